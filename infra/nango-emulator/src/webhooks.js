import { createHash, createHmac, randomUUID } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';

// Nango 0.71's delivery: one POST per URL, URLs one after the other, same bytes to each;
// up to 3 attempts per URL; retried only on network errors and HTTP >= 500.
const USER_AGENT = `nango/0.71.10 (${os.platform()}/${os.release()}; node.js/${process.versions.node})`;
const RETRYABLE_NETWORK_ERRORS = ['ECONNRESET', 'ETIMEDOUT', 'ECONNABORTED', 'ECONNREFUSED', 'EHOSTUNREACH', 'EAI_AGAIN', 'UND_ERR_SOCKET'];

/** JSON with object keys sorted recursively and `undefined` members dropped (safe-stable-stringify). */
export function stableStringify(value) {
    return JSON.stringify(sortKeys(value));
}

function sortKeys(value) {
    if (Array.isArray(value)) return value.map((item) => (item === undefined ? null : sortKeys(item)));
    if (value && typeof value === 'object' && !(value instanceof Date)) {
        const out = {};
        for (const key of Object.keys(value).sort()) {
            if (value[key] !== undefined) out[key] = sortKeys(value[key]);
        }
        return out;
    }
    return value;
}

export function hmacSignature(key, body) {
    return createHmac('sha256', key).update(body).digest('hex');
}

/** The legacy X-Nango-Signature: SHA-256 of key followed by body (length-extension prone). */
export function legacySignature(key, body) {
    return createHash('sha256').update(`${key}${body}`).digest('hex');
}

/**
 * Builds an auth webhook body exactly as Nango's sendAuth does; `tags` and `endUser` are left
 * out when undefined (failed creations have no tags; endUser only for deprecated end_user sessions).
 */
export function authWebhookBody({ connectionId, providerConfigKey, provider, authMode, environment, operation, success, tags, endUser, error }) {
    return {
        from: 'nango',
        type: 'auth',
        connectionId,
        providerConfigKey,
        authMode,
        provider: provider || 'unknown',
        environment,
        operation,
        tags,
        endUser: endUser
            ? {
                  endUserId: endUser.endUserId,
                  endUserEmail: endUser.email,
                  organizationId: endUser.organization?.organizationId,
                  tags: endUser.tags || {}
              }
            : undefined,
        success,
        ...(success ? {} : { error })
    };
}

function postOnce(url, body, headers, timeoutMs, active) {
    return new Promise((resolve) => {
        const target = new URL(url);
        const client = target.protocol === 'https:' ? https : http;
        const req = client.request(
            target,
            { method: 'POST', headers: { ...headers, 'Content-Length': Buffer.byteLength(body) }, agent: false, timeout: timeoutMs },
            (res) => {
                res.resume();
                res.on('end', () => resolve({ status: res.statusCode }));
                res.on('error', (err) => resolve({ error: err.code || err.message }));
            }
        );
        active.add(req);
        req.on('close', () => active.delete(req));
        req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'ECONNABORTED' })));
        req.on('error', (err) => resolve({ error: err.code || err.message }));
        req.end(body);
    });
}

function shouldRetry(result) {
    if (result.error) return RETRYABLE_NETWORK_ERRORS.includes(result.error);
    return result.status >= 500;
}

/**
 * Rules that lose webhooks on purpose, as Nango's circuit breaker or an exhausted retry does.
 * A rule drops the next `remaining` matching webhooks (null: every one until cleared), each
 * with `probability`; a dropped webhook reaches no URL and is logged with status `dropped`.
 */
export class DropRules {
    constructor() {
        this.rules = [];
        this.nextId = 1;
    }

    add({ count, connectionId, operation, success, probability = 1 }) {
        const rule = { id: this.nextId++, remaining: count ?? null, connectionId, operation, success, probability, dropped: 0 };
        this.rules.push(rule);
        return rule;
    }

    clear() {
        this.rules = [];
    }

    /** The rule that drops this payload, if any; uses it up. */
    take(payload, random) {
        for (const rule of this.rules) {
            if (rule.remaining === 0) continue;
            if (rule.connectionId !== undefined && rule.connectionId !== payload.connectionId) continue;
            if (rule.operation !== undefined && rule.operation !== payload.operation) continue;
            if (rule.success !== undefined && rule.success !== payload.success) continue;
            if (rule.probability < 1 && random() >= rule.probability) continue;
            if (rule.remaining !== null) rule.remaining -= 1;
            rule.dropped += 1;
            return rule;
        }
        return null;
    }
}

export const DEFAULT_DELIVERY = Object.freeze({ duplicates: 0, reorderWindowMs: 0, concurrency: 0 });

export class WebhookSender {
    /**
     * `config`: {webhookUrls, webhookSigningKey, retryDelaysMs, webhookTimeoutMs}, read at each
     * send so runtime changes apply; `log`: array the deliveries are recorded in; `random`: the
     * seeded generator for drop probabilities and reorder delays.
     */
    constructor(config, log, random) {
        this.config = config;
        this.log = log;
        this.random = random;
        this.dropRules = new DropRules();
        // Soak faults: `duplicates` extra copies of every webhook, each copy waiting a random
        // 0..reorderWindowMs before its first attempt; at most `concurrency` POSTs in flight (0: no limit).
        this.delivery = { ...DEFAULT_DELIVERY };
        this.inFlight = 0;
        // The most POSTs ever in flight at once since the last reset, for the soak's figures.
        this.maxInFlight = 0;
        this.slotWaiters = [];
        this.timers = new Set();
        this.closed = false;
        this.activeRequests = new Set();
    }

    /** Back to normal delivery: no drop rules, no duplicates or delays, no concurrency limit. */
    resetFaults(random) {
        this.random = random;
        this.dropRules.clear();
        this.setDelivery(DEFAULT_DELIVERY);
        this.maxInFlight = this.inFlight;
    }

    setDelivery(settings) {
        Object.assign(this.delivery, settings);
        this.#grantSlots();
    }

    /**
     * Sends without blocking the caller. A connection's webhook_url_override replaces the first
     * URL and drops the others, as Nango's resolveWebhookSettings does. Each copy goes to the URLs
     * one after the other, as one Nango send does; copies are independent of each other.
     */
    send(payload, options = {}) {
        return this.dispatch(payload, options).deliveries;
    }

    /**
     * As send(), and also returns `settled`: a promise that resolves once every copy reached a
     * final status (delivered, failed, dropped or cancelled). `forwarded` marks a provider body
     * forwarded as is (POST /_emulator/webhooks/forward), which may be any JSON value.
     */
    dispatch(payload, { webhookUrlOverride, forwarded = false } = {}) {
        const urls = webhookUrlOverride ? [webhookUrlOverride] : [...this.config.webhookUrls];
        const body = stableStringify(payload);
        const key = this.config.webhookSigningKey;
        const headers = {
            'X-Nango-Signature': legacySignature(key, body),
            'X-Nango-Hmac-Sha256': hmacSignature(key, body),
            'Content-Type': 'application/json',
            'User-Agent': USER_AGENT
        };
        const eventId = randomUUID();
        // A forwarded body can be an array, a string or null: only an object has fields to match.
        const fields = payload && typeof payload === 'object' && !Array.isArray(payload) ? payload : {};
        const dropRule = this.dropRules.take(fields, this.random);
        const copies = dropRule ? 1 : 1 + this.delivery.duplicates;
        const all = [];
        const sending = [];
        for (let copy = 0; copy < copies; copy++) {
            const delayMs = !dropRule && this.delivery.reorderWindowMs > 0 ? Math.floor(this.random() * (this.delivery.reorderWindowMs + 1)) : 0;
            const deliveries = urls.map((url) => {
                const delivery = {
                    id: randomUUID(),
                    eventId,
                    copy,
                    url,
                    type: fields.type,
                    operation: fields.operation,
                    success: fields.success,
                    connectionId: fields.connectionId,
                    ...(forwarded ? { forwarded: true } : {}),
                    body,
                    headers,
                    attempts: [],
                    status: dropRule ? 'dropped' : 'pending',
                    ...(dropRule ? { droppedBy: dropRule.id } : {}),
                    delayMs,
                    createdAt: new Date().toISOString()
                };
                this.log.push(delivery);
                return delivery;
            });
            all.push(...deliveries);
            if (!dropRule) sending.push(this.#deliverAll(deliveries, body, headers, delayMs));
        }
        return { deliveries: all, settled: Promise.all(sending).then(() => all) };
    }

    async #deliverAll(deliveries, body, headers, delayMs) {
        if (delayMs > 0) await this.#sleep(delayMs);
        for (const delivery of deliveries) {
            await this.#deliver(delivery, body, headers);
        }
    }

    async #deliver(delivery, body, headers) {
        const delays = this.config.retryDelaysMs;
        const maxAttempts = delays.length + 1;
        for (let attempt = 1; attempt <= maxAttempts && !this.closed; attempt++) {
            await this.#acquireSlot();
            if (this.closed) {
                this.#releaseSlot();
                break;
            }
            const startedAt = new Date().toISOString();
            let result;
            try {
                result = await postOnce(delivery.url, body, headers, this.config.webhookTimeoutMs, this.activeRequests);
            } finally {
                this.#releaseSlot();
            }
            delivery.attempts.push({ startedAt, ...result });
            if (result.status >= 200 && result.status < 300) {
                delivery.status = 'delivered';
                return;
            }
            if (!shouldRetry(result) || attempt === maxAttempts) break;
            await this.#sleep(delays[attempt - 1]);
        }
        delivery.status = this.closed && delivery.attempts.length < maxAttempts ? 'cancelled' : 'failed';
    }

    // A slot is held for one attempt only, not across the retry waits.
    #acquireSlot() {
        if (this.#hasFreeSlot() && this.slotWaiters.length === 0) {
            this.#takeSlot();
            return Promise.resolve();
        }
        return new Promise((resolve) => this.slotWaiters.push(resolve));
    }

    #releaseSlot() {
        this.inFlight -= 1;
        this.#grantSlots();
    }

    #hasFreeSlot() {
        return this.closed || this.delivery.concurrency === 0 || this.inFlight < this.delivery.concurrency;
    }

    #grantSlots() {
        while (this.slotWaiters.length > 0 && this.#hasFreeSlot()) {
            this.#takeSlot();
            this.slotWaiters.shift()();
        }
    }

    #takeSlot() {
        this.inFlight += 1;
        this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    }

    #sleep(ms) {
        return new Promise((resolve) => {
            const waiting = { resolve };
            waiting.timer = setTimeout(() => {
                this.timers.delete(waiting);
                resolve();
            }, ms);
            this.timers.add(waiting);
        });
    }

    /** Stops waiting retries so the process (or a test) can exit promptly. */
    close() {
        this.closed = true;
        for (const waiting of this.timers) {
            clearTimeout(waiting.timer);
            waiting.resolve();
        }
        this.timers.clear();
        this.#grantSlots();
        for (const req of this.activeRequests) req.destroy(Object.assign(new Error('emulator closed'), { code: 'ECANCELED' }));
    }
}
