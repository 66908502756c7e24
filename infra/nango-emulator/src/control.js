import { RUNTIME_SETTINGS, checkRuntimeSettings, findIntegration, runtimeSettings } from './config.js';
import { deletedInNango } from './connections.js';
import { ANY_ROUTE } from './faults.js';
import { sendEmpty, sendError, sendJson } from './http.js';
import { publicRoutes } from './routes.js';
import { pgTimestamp } from './store.js';
import { connectionIdParam, connectionTags, validate } from './validation.js';

// /_emulator/* — test and debugging controls that real Nango does not have. They need no
// credentials: the emulator listens on 127.0.0.1 only. A malformed control body answers
// 400 {"error":{"code":"invalid_body","message":...}} and changes nothing.

const OPERATIONS = ['creation', 'override', 'refresh', 'deletion'];
const MAX_CREATE = 20_000;

class ControlError extends Error {}

/** Runs a control handler; a ControlError thrown while checking its input becomes a 400. */
function control(handler) {
    return (request, ctx) => {
        try {
            return handler(request, ctx);
        } catch (err) {
            if (err instanceof ControlError) return sendError(request.res, 400, 'invalid_body', { message: err.message });
            throw err;
        }
    };
}

function objectBody(body) {
    if (body === undefined) return {};
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ControlError('the body must be a JSON object');
    return body;
}

function onlyKeys(body, allowed) {
    const unknown = Object.keys(body).filter((key) => !allowed.includes(key));
    if (unknown.length > 0) throw new ControlError(`unknown field(s) ${unknown.join(', ')}; allowed: ${allowed.join(', ')}`);
}

function integer(body, key, { min = 0, max = Number.MAX_SAFE_INTEGER } = {}) {
    const value = body[key];
    if (value === undefined) return undefined;
    if (!Number.isInteger(value) || value < min || value > max) throw new ControlError(`${key} must be an integer in ${min}..${max}`);
    return value;
}

function probability(body) {
    const value = body.probability ?? 1;
    if (typeof value !== 'number' || !(value > 0 && value <= 1)) throw new ControlError('probability must be a number in (0, 1]');
    return value;
}

function boolean(body, key) {
    const value = body[key];
    if (value !== undefined && typeof value !== 'boolean') throw new ControlError(`${key} must be true or false`);
    return value;
}

function string(body, key) {
    const value = body[key];
    if (value !== undefined && (typeof value !== 'string' || value.length === 0)) throw new ControlError(`${key} must be a non-empty string`);
    return value;
}

/** Query flag `webhook=false`; the body's `webhook` wins. */
function webhookFlag(query, body, fallback) {
    const fromBody = boolean(body, 'webhook');
    if (fromBody !== undefined) return fromBody;
    if (query.webhook === undefined) return fallback;
    if (query.webhook !== 'true' && query.webhook !== 'false') throw new ControlError('webhook must be true or false');
    return query.webhook === 'true';
}

// ---------- webhooks

function summary(delivery) {
    return { ...delivery, payload: JSON.parse(delivery.body) };
}

function listWebhooks({ res, query }, ctx) {
    let list = ctx.store.webhookLog;
    if (query.connectionId) list = list.filter((d) => d.connectionId === query.connectionId);
    if (query.operation) list = list.filter((d) => d.operation === query.operation);
    if (query.status) list = list.filter((d) => d.status === query.status);
    sendJson(res, 200, { webhooks: list.map(summary) });
}

/** Counts for a soak's table: events, deliveries by status, attempts and retries. */
function webhookStats({ res }, ctx) {
    const log = ctx.store.webhookLog;
    const byStatus = { pending: 0, delivered: 0, failed: 0, dropped: 0, cancelled: 0 };
    let attempts = 0;
    // What the attempts met: an HTTP status, or a network error's code ("ECONNREFUSED").
    const answers = {};
    for (const delivery of log) {
        byStatus[delivery.status] += 1;
        attempts += delivery.attempts.length;
        for (const attempt of delivery.attempts) {
            const answer = attempt.status ?? attempt.error;
            answers[answer] = (answers[answer] ?? 0) + 1;
        }
    }
    const sent = log.filter((d) => d.status !== 'dropped');
    sendJson(res, 200, {
        events: new Set(log.map((d) => d.eventId)).size,
        deliveries: log.length,
        ...byStatus,
        duplicates: log.filter((d) => d.copy > 0).length,
        attempts,
        retries: attempts - sent.filter((d) => d.attempts.length > 0).length,
        answers,
        maxInFlight: ctx.webhooks.maxInFlight
    });
}

function dropRules(ctx) {
    return { rules: ctx.webhooks.dropRules.rules };
}

/**
 * {"count":N} drops the next N matching webhooks, {"mode":"all"} every matching one until
 * {"mode":"off"} (which removes every rule). Filters: connectionId, operation, success; and
 * probability (seeded) to drop only a share of them.
 */
const setDropRule = control(({ res, body: raw }, ctx) => {
    const body = objectBody(raw);
    onlyKeys(body, ['count', 'mode', 'connectionId', 'operation', 'success', 'probability']);
    const count = integer(body, 'count', { min: 1 });
    const { mode } = body;
    if (mode !== undefined && !['all', 'off'].includes(mode)) throw new ControlError('mode must be "all" or "off"');
    if ((count === undefined) === (mode === undefined)) throw new ControlError('give either count or mode');
    if (mode === 'off') {
        if (Object.keys(body).length > 1) throw new ControlError('mode "off" removes every rule and takes no other field');
        ctx.webhooks.dropRules.clear();
        return sendJson(res, 200, dropRules(ctx));
    }
    const operation = string(body, 'operation');
    if (operation !== undefined && !OPERATIONS.includes(operation)) throw new ControlError(`operation must be one of ${OPERATIONS.join(', ')}`);
    ctx.webhooks.dropRules.add({
        count,
        connectionId: string(body, 'connectionId'),
        operation,
        success: boolean(body, 'success'),
        probability: probability(body)
    });
    sendJson(res, 200, dropRules(ctx));
});

/** Soak faults on every delivery: duplicates, a reorder window, a concurrency limit; and the seed. */
const setDelivery = control(({ res, body: raw }, ctx) => {
    const body = objectBody(raw);
    onlyKeys(body, ['duplicates', 'reorderWindowMs', 'concurrency', 'seed']);
    const settings = {};
    for (const [key, max] of [
        ['duplicates', 100],
        ['reorderWindowMs', 600_000],
        ['concurrency', 10_000]
    ]) {
        const value = integer(body, key, { max });
        if (value !== undefined) settings[key] = value;
    }
    const seed = integer(body, 'seed', { max: 0xffffffff });
    if (seed !== undefined) ctx.reseed(seed);
    ctx.webhooks.setDelivery(settings);
    sendJson(res, 200, ctx.webhooks.delivery);
});

/**
 * What Nango does with a provider webhook it matches to no connection: it forwards the
 * provider's body unwrapped (parsed, re-serialized compact with sorted keys), signed with the
 * environment's key and sent with the headers of an auth webhook, to the environment's URLs
 * (docs/nango-api.md §6). The body of this call is that provider body, any JSON value. It goes
 * through the same delivery as every webhook (drop rules, duplicates, retries, stats). Answers
 * once every delivery is final, with what each met; `?wait=false` answers 202 at once.
 */
async function forwardProviderBody({ req, res, query, body }, ctx) {
    if (body === undefined) {
        return sendError(res, 400, 'invalid_body', { message: 'the body must be JSON (Content-Type: application/json): the provider body to forward' });
    }
    if (query.wait !== undefined && query.wait !== 'true' && query.wait !== 'false') {
        return sendError(res, 400, 'invalid_body', { message: 'wait must be true or false' });
    }
    const { deliveries, settled } = ctx.webhooks.dispatch(body, { forwarded: true });
    if (query.wait === 'false') return sendJson(res, 202, forwardOutcome(deliveries));
    await settled;
    // The caller may have given up waiting (a retry wait is seconds long); then nobody listens.
    if (!req.socket.destroyed) sendJson(res, 200, forwardOutcome(deliveries));
}

function forwardOutcome(deliveries) {
    return {
        body: deliveries[0]?.body ?? null,
        delivered: deliveries.length > 0 && deliveries.every((d) => d.status === 'delivered'),
        deliveries: deliveries.map(({ id, eventId, copy, url, status, droppedBy, attempts }) => ({ id, eventId, copy, url, status, droppedBy, attempts }))
    };
}

// ---------- API request counts

/** How many calls of Nango's API each route got since the start, the last reset or the last DELETE. */
function requestCounts({ res }, ctx) {
    sendJson(res, 200, ctx.requests.summary());
}

function clearRequestCounts({ res }, ctx) {
    ctx.requests.clear();
    sendEmpty(res, 204);
}

// ---------- integrations

/**
 * Removes an integration, as deleting it in Nango's dashboard does: its connections are
 * soft-deleted without any webhook; the key is unknown from then on (GET /connections/{id} with it
 * answers 400 unknown_provider_config, new sessions naming it 400 invalid_body, the API-key
 * authorization 404 unknown_provider_config). POST /_emulator/reset brings it back.
 */
function removeIntegration({ res, params }, ctx) {
    const integration = findIntegration(ctx.config, params.integrationId);
    if (!integration) return sendError(res, 404, 'unknown_provider_config', { message: `no integration ${JSON.stringify(params.integrationId)}` });
    ctx.config.integrations = ctx.config.integrations.filter((i) => i !== integration);
    const removed = ctx.store.liveConnections().filter((c) => c.provider_config_key === integration.id);
    for (const connection of removed) ctx.store.deleteConnection(connection);
    sendJson(res, 200, { integration: integration.id, connections: removed.map(truthRow) });
}

/**
 * {"id": "<key>"}: a removed integration is created again with the same key, as in Nango's
 * dashboard: a new, empty integration; the connections its removal deleted stay deleted.
 */
const restoreIntegration = control(({ res, body: raw }, ctx) => {
    const body = objectBody(raw);
    onlyKeys(body, ['id']);
    const id = string(body, 'id');
    if (id === undefined) throw new ControlError('id is required');
    if (findIntegration(ctx.config, id)) throw new ControlError(`integration ${JSON.stringify(id)} exists`);
    const configured = ctx.configuredIntegrations.find((i) => i.id === id);
    if (!configured) throw new ControlError(`${JSON.stringify(id)} is not one of the configured integrations`);
    ctx.config.integrations = ctx.configuredIntegrations.filter((i) => i === configured || ctx.config.integrations.includes(i));
    sendJson(res, 201, { integration: id });
});

function listIntegrations({ res }, ctx) {
    sendJson(res, 200, { integrations: ctx.config.integrations.map(({ id, provider, authMode, displayName }) => ({ id, provider, authMode, displayName })) });
}

// ---------- API faults

const ROUTE_KEYS = publicRoutes.map((route) => `${route.method} ${route.path}`);

/** "GET /connections/{connectionId}" is accepted for "GET /connections/:connectionId". */
function routeKey(value) {
    if (value === undefined || value === ANY_ROUTE) return ANY_ROUTE;
    if (typeof value !== 'string') throw new ControlError('route must be a string');
    const key = value.trim().replace(/\{([A-Za-z]+)\}/g, ':$1');
    if (!ROUTE_KEYS.includes(key)) throw new ControlError(`unknown route ${JSON.stringify(value)}; one of "*", ${ROUTE_KEYS.map((k) => `"${k}"`).join(', ')}`);
    return key;
}

/**
 * {"route","count","probability","page", then what happens: "status" (429 with "retryAfter", or
 * 500..599), "malformed" (200 with a cut JSON body), "reset" (connection reset), and/or "hangMs"
 * (wait first; alone, the call then proceeds normally)}.
 */
const addFault = control(({ res, body: raw }, ctx) => {
    const body = objectBody(raw);
    onlyKeys(body, ['route', 'count', 'probability', 'page', 'status', 'retryAfter', 'hangMs', 'malformed', 'reset']);
    const route = routeKey(body.route);
    const rule = { route, count: integer(body, 'count', { min: 1 }), probability: probability(body) };
    const page = integer(body, 'page');
    if (page !== undefined) {
        if (route !== 'GET /connections') throw new ControlError('page only applies to route "GET /connections"');
        rule.page = page;
    }
    const outcomes = [];
    const { status } = body;
    if (status !== undefined) {
        if (status !== 429 && !(Number.isInteger(status) && status >= 500 && status <= 599)) throw new ControlError('status must be 429 or 500..599');
        rule.status = status;
        outcomes.push('status');
    }
    const retryAfter = integer(body, 'retryAfter', { max: 86_400 });
    if (retryAfter !== undefined && status !== 429) throw new ControlError('retryAfter goes with status 429');
    if (status === 429) rule.retryAfter = retryAfter ?? 1;
    if (boolean(body, 'malformed')) {
        rule.malformed = true;
        outcomes.push('malformed');
    }
    if (boolean(body, 'reset')) {
        rule.reset = true;
        outcomes.push('reset');
    }
    if (outcomes.length > 1) throw new ControlError(`give at most one of status, malformed, reset (got ${outcomes.join(', ')})`);
    const hangMs = integer(body, 'hangMs', { min: 1, max: 600_000 });
    if (hangMs !== undefined) rule.hangMs = hangMs;
    if (outcomes.length === 0 && hangMs === undefined) throw new ControlError('give status, malformed, reset or hangMs');
    sendJson(res, 201, { fault: ctx.faults.add(rule) });
});

function listFaults({ res }, ctx) {
    sendJson(res, 200, { faults: ctx.faults.rules });
}

function clearFaults({ res }, ctx) {
    ctx.faults.clear();
    ctx.store.rateLimit = { remaining: 0, retryAfter: 1 };
    sendEmpty(res, 204);
}

/** The next `count` authenticated API calls answer 429 too_many_request. */
function rateLimit({ res, body }, ctx) {
    const count = Number(body?.count ?? 1);
    const retryAfter = Number(body?.retryAfter ?? 1);
    if (!Number.isInteger(count) || count < 0 || !Number.isInteger(retryAfter) || retryAfter < 0) {
        return sendError(res, 400, 'invalid_body', { message: 'count and retryAfter must be non-negative integers' });
    }
    ctx.store.rateLimit = { remaining: count, retryAfter };
    sendJson(res, 200, { remaining: count, retryAfter });
}

// ---------- the truth about connections

function truthRow(connection) {
    return {
        id: connection.id,
        connection_id: connection.connection_id,
        provider_config_key: connection.provider_config_key,
        provider: connection.provider,
        tags: connection.tags,
        first_tags: connection.first_tags,
        errors: connection.errors,
        auth_error: connection.errors.some((e) => e.type === 'auth'),
        deleted: connection.deleted_at !== null,
        created_at: pgTimestamp(connection.created_at),
        updated_at: pgTimestamp(connection.updated_at),
        deleted_at: connection.deleted_at ? pgTimestamp(connection.deleted_at) : null
    };
}

/** Every connection the environment ever had, oldest first; `?deleted=true|false`, `?connectionId=`, `?integrationId=`. */
function listTruth({ res, query }, ctx) {
    let list = ctx.store.connections;
    if (query.deleted === 'true' || query.deleted === 'false') list = list.filter((c) => (c.deleted_at !== null) === (query.deleted === 'true'));
    if (query.connectionId) list = list.filter((c) => c.connection_id === query.connectionId);
    if (query.integrationId) list = list.filter((c) => c.provider_config_key === query.integrationId);
    const deleted = ctx.store.connections.filter((c) => c.deleted_at !== null).length;
    sendJson(res, 200, {
        total: ctx.store.connections.length,
        live: ctx.store.connections.length - deleted,
        deleted,
        connections: list.map(truthRow)
    });
}

const CREATE_FIELDS = ['integration', 'tags', 'connectionId', 'authError', 'webhook', 'createdAt', 'count'];

function checkCreateSpec(spec, where, ctx, claimed) {
    if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) throw new ControlError(`${where} must be an object`);
    onlyKeys(spec, CREATE_FIELDS);
    const integration = findIntegration(ctx.config, string(spec, 'integration'));
    if (!integration) throw new ControlError(`${where}.integration must name a configured integration (${ctx.config.integrations.map((i) => i.id).join(', ')})`);
    let tags = {};
    if (spec.tags !== undefined) {
        const checked = validate(connectionTags, spec.tags);
        if (!checked.ok) throw new ControlError(`${where}.tags: ${checked.errors.map((e) => `${e.path.join('.') || 'tags'}: ${e.message}`).join('; ')}`);
        tags = checked.value;
    }
    const count = integer(spec, 'count', { min: 1, max: MAX_CREATE }) ?? 1;
    const connectionId = spec.connectionId;
    if (connectionId !== undefined) {
        if (count !== 1) throw new ControlError(`${where}: connectionId and count > 1 do not go together`);
        if (!validate(connectionIdParam, connectionId).ok) throw new ControlError(`${where}.connectionId is not a valid Nango connection id`);
        const key = `${integration.id}\u0000${connectionId}`;
        if (ctx.store.findConnection(connectionId, integration.id) || claimed.has(key)) {
            throw new ControlError(`${where}: connection ${connectionId} already exists for ${integration.id}`);
        }
        claimed.add(key);
    }
    let createdAt;
    if (spec.createdAt !== undefined) {
        createdAt = typeof spec.createdAt === 'string' ? new Date(spec.createdAt) : new Date(NaN);
        if (Number.isNaN(createdAt.getTime())) throw new ControlError(`${where}.createdAt must be an ISO 8601 date`);
    }
    return {
        integration,
        tags,
        count,
        connectionId,
        createdAt,
        authError: boolean(spec, 'authError') ?? false,
        webhook: boolean(spec, 'webhook') ?? true
    };
}

/**
 * Creates connections directly, as if users had completed Connect: one spec, or
 * {"connections":[spec, ...]}. All specs are checked before anything is created.
 */
const createConnections = control(({ res, body: raw }, ctx) => {
    const body = objectBody(raw);
    const claimed = new Set();
    let specs;
    if ('connections' in body) {
        onlyKeys(body, ['connections']);
        if (!Array.isArray(body.connections) || body.connections.length === 0) throw new ControlError('connections must be a non-empty array');
        specs = body.connections.map((spec, i) => checkCreateSpec(spec, `connections[${i}]`, ctx, claimed));
    } else {
        specs = [checkCreateSpec(body, 'body', ctx, claimed)];
    }
    const total = specs.reduce((sum, spec) => sum + spec.count, 0);
    if (total > MAX_CREATE) throw new ControlError(`at most ${MAX_CREATE} connections per call`);

    const created = [];
    for (const spec of specs) {
        for (let i = 0; i < spec.count; i++) {
            const connection = ctx.store.createConnection({
                integration: spec.integration,
                credentials: { type: spec.integration.authMode, apiKey: 'emulator-created' },
                connectionConfig: {},
                webhookUrlOverride: null,
                tags: { ...spec.tags },
                connectionId: spec.connectionId,
                createdAt: spec.createdAt
            });
            if (spec.authError) ctx.store.markAuthError(connection);
            if (spec.webhook) ctx.sendAuthWebhook(connection, { operation: 'creation', success: true, tags: connection.tags });
            created.push(connection);
        }
    }
    sendJson(res, 201, { connections: created.map(truthRow) });
});

/** Finds the live connection named in the path, narrowed by provider_config_key (query or body) when given. */
function targetConnection({ res, query, body, params }, ctx) {
    const key = query.provider_config_key || body?.provider_config_key;
    const candidates = ctx.store.liveConnections().filter((c) => c.connection_id === params.connectionId && (!key || c.provider_config_key === key));
    if (candidates.length === 0) {
        sendError(res, 404, 'not_found', { message: 'Failed to find connection' });
        return null;
    }
    if (candidates.length > 1) {
        sendError(res, 400, 'ambiguous_connection', { message: 'Several integrations have this connection id: pass provider_config_key' });
        return null;
    }
    return candidates[0];
}

/**
 * Deleted in Nango behind the backend's back (the dashboard, another caller of the API): no
 * rate limit or API fault applies; the deletion webhook follows sendDeletionWebhooks unless
 * `?webhook=false|true` (or {"webhook": bool}) says otherwise.
 */
const deleteBehindTheBack = control((request, ctx) => {
    const body = objectBody(request.body);
    onlyKeys(body, ['provider_config_key', 'webhook']);
    const webhook = webhookFlag(request.query, body, ctx.config.sendDeletionWebhooks);
    const connection = targetConnection(request, ctx);
    if (!connection) return;
    const deliveries = deletedInNango(connection, ctx, { webhook });
    sendJson(request.res, 200, { connection: truthRow(connection), webhooks: deliveries.map((d) => d.id) });
});

/**
 * What Nango does when a token refresh or credentials check fails: an active auth error on the
 * connection and a `refresh` failure webhook carrying the connection's tags (unless webhook:false).
 */
const refreshFailure = control((request, ctx) => {
    const body = objectBody(request.body);
    onlyKeys(body, ['provider_config_key', 'error', 'webhook']);
    const webhook = webhookFlag(request.query, body, true);
    const connection = targetConnection(request, ctx);
    if (!connection) return;
    const error = body.error || { type: 'refresh_token_external_error', description: 'invalid_grant' };
    const logEntry = ctx.store.markAuthError(connection);
    const deliveries = webhook ? ctx.sendAuthWebhook(connection, { operation: 'refresh', success: false, tags: connection.tags, error }) : [];
    sendJson(request.res, 200, { connectionId: connection.connection_id, errors: connection.errors, log_id: logEntry.log_id, webhooks: deliveries.map((d) => d.id) });
});

/** Newer Nango servers announce a recovered connection with a `refresh` success webhook. */
const refreshSuccess = control((request, ctx) => {
    const body = objectBody(request.body);
    onlyKeys(body, ['provider_config_key', 'webhook']);
    const webhook = webhookFlag(request.query, body, true);
    const connection = targetConnection(request, ctx);
    if (!connection) return;
    ctx.store.clearAuthErrors(connection);
    const deliveries = webhook ? ctx.sendAuthWebhook(connection, { operation: 'refresh', success: true, tags: connection.tags }) : [];
    sendJson(request.res, 200, { connectionId: connection.connection_id, errors: connection.errors, webhooks: deliveries.map((d) => d.id) });
});

// ---------- settings, seed, reset

function getSettings({ res }, ctx) {
    sendJson(res, 200, runtimeSettings(ctx.config));
}

/** Changes runtime settings (see RUNTIME_SETTINGS) until the next reset, e.g. {"sendDeletionWebhooks": false}. */
const setSettings = control(({ res, body: raw }, ctx) => {
    const body = objectBody(raw);
    onlyKeys(body, RUNTIME_SETTINGS);
    const problem = checkRuntimeSettings(body);
    if (problem) throw new ControlError(problem);
    Object.assign(ctx.config, structuredClone(body));
    sendJson(res, 200, runtimeSettings(ctx.config));
});

const setSeed = control(({ res, body: raw }, ctx) => {
    const body = objectBody(raw);
    onlyKeys(body, ['seed']);
    const seed = integer(body, 'seed', { max: 0xffffffff });
    if (seed === undefined) throw new ControlError('seed is required');
    ctx.reseed(seed);
    sendJson(res, 200, { seed });
});

function reset({ res }, ctx) {
    ctx.reset();
    sendEmpty(res, 204);
}

export const controlRoutes = [
    { method: 'GET', path: '/_emulator/webhooks', handler: listWebhooks },
    { method: 'GET', path: '/_emulator/webhooks/stats', handler: webhookStats },
    { method: 'GET', path: '/_emulator/webhooks/drop', handler: ({ res }, ctx) => sendJson(res, 200, dropRules(ctx)) },
    { method: 'POST', path: '/_emulator/webhooks/drop', handler: setDropRule },
    { method: 'GET', path: '/_emulator/webhooks/delivery', handler: ({ res }, ctx) => sendJson(res, 200, ctx.webhooks.delivery) },
    { method: 'POST', path: '/_emulator/webhooks/delivery', handler: setDelivery },
    { method: 'POST', path: '/_emulator/webhooks/forward', handler: forwardProviderBody },
    { method: 'GET', path: '/_emulator/requests', handler: requestCounts },
    { method: 'DELETE', path: '/_emulator/requests', handler: clearRequestCounts },
    { method: 'GET', path: '/_emulator/integrations', handler: listIntegrations },
    { method: 'POST', path: '/_emulator/integrations', handler: restoreIntegration },
    { method: 'DELETE', path: '/_emulator/integrations/:integrationId', handler: removeIntegration },
    { method: 'GET', path: '/_emulator/faults', handler: listFaults },
    { method: 'POST', path: '/_emulator/faults', handler: addFault },
    { method: 'DELETE', path: '/_emulator/faults', handler: clearFaults },
    { method: 'POST', path: '/_emulator/rate-limit', handler: rateLimit },
    { method: 'GET', path: '/_emulator/connections', handler: listTruth },
    { method: 'POST', path: '/_emulator/connections', handler: createConnections },
    { method: 'DELETE', path: '/_emulator/connections/:connectionId', handler: deleteBehindTheBack },
    { method: 'POST', path: '/_emulator/connections/:connectionId/refresh-failure', handler: refreshFailure },
    { method: 'POST', path: '/_emulator/connections/:connectionId/refresh-success', handler: refreshSuccess },
    { method: 'GET', path: '/_emulator/config', handler: getSettings },
    { method: 'POST', path: '/_emulator/config', handler: setSettings },
    { method: 'POST', path: '/_emulator/seed', handler: setSeed },
    { method: 'POST', path: '/_emulator/reset', handler: reset }
];
