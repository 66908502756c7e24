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

export class WebhookSender {
    /** `config`: {webhookUrls, webhookSigningKey, retryDelaysMs, webhookTimeoutMs}; `log`: array the deliveries are recorded in. */
    constructor(config, log) {
        this.config = config;
        this.log = log;
        this.timers = new Set();
        this.closed = false;
        this.activeRequests = new Set();
    }

    /**
     * Sends without blocking the caller. A connection's webhook_url_override replaces the first
     * URL and drops the others, as Nango's resolveWebhookSettings does.
     */
    send(payload, { webhookUrlOverride } = {}) {
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
        const deliveries = urls.map((url) => {
            const delivery = {
                id: randomUUID(),
                eventId,
                url,
                type: payload.type,
                operation: payload.operation,
                success: payload.success,
                connectionId: payload.connectionId,
                body,
                headers,
                attempts: [],
                status: 'pending',
                createdAt: new Date().toISOString()
            };
            this.log.push(delivery);
            return delivery;
        });
        void this.#deliverAll(deliveries, body, headers);
        return deliveries;
    }

    async #deliverAll(deliveries, body, headers) {
        for (const delivery of deliveries) {
            await this.#deliver(delivery, body, headers);
        }
    }

    async #deliver(delivery, body, headers) {
        const delays = this.config.retryDelaysMs;
        const maxAttempts = delays.length + 1;
        for (let attempt = 1; attempt <= maxAttempts && !this.closed; attempt++) {
            const startedAt = new Date().toISOString();
            const result = await postOnce(delivery.url, body, headers, this.config.webhookTimeoutMs, this.activeRequests);
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
        for (const req of this.activeRequests) req.destroy(Object.assign(new Error('emulator closed'), { code: 'ECANCELED' }));
    }
}
