import { sendEmpty, sendError, sendJson } from './http.js';

// /_emulator/* — test and debugging controls that real Nango does not have. They need no
// credentials: the emulator listens on 127.0.0.1 only.

function summary(delivery) {
    return { ...delivery, payload: JSON.parse(delivery.body) };
}

function listWebhooks({ res, query }, ctx) {
    let list = ctx.store.webhookLog;
    if (query.connectionId) list = list.filter((d) => d.connectionId === query.connectionId);
    if (query.operation) list = list.filter((d) => d.operation === query.operation);
    sendJson(res, 200, { webhooks: list.map(summary) });
}

function reset({ res }, ctx) {
    ctx.store.reset();
    sendEmpty(res, 204);
}

/** Finds the connection named in the path, narrowed by provider_config_key (query or body) when given. */
function targetConnection({ res, query, body, params }, ctx) {
    const key = query.provider_config_key || body?.provider_config_key;
    const candidates = ctx.store.connections.filter((c) => c.connection_id === params.connectionId && (!key || c.provider_config_key === key));
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
 * What Nango does when a token refresh or credentials check fails: an active auth error on the
 * connection and a `refresh` failure webhook carrying the connection's tags.
 */
function refreshFailure(request, ctx) {
    const connection = targetConnection(request, ctx);
    if (!connection) return;
    const error = request.body?.error || { type: 'refresh_token_external_error', description: 'invalid_grant' };
    const logEntry = ctx.store.markAuthError(connection);
    const deliveries = ctx.sendAuthWebhook(connection, { operation: 'refresh', success: false, tags: connection.tags, error });
    sendJson(request.res, 200, { connectionId: connection.connection_id, errors: connection.errors, log_id: logEntry.log_id, webhooks: deliveries.map((d) => d.id) });
}

/** Newer Nango servers announce a recovered connection with a `refresh` success webhook. */
function refreshSuccess(request, ctx) {
    const connection = targetConnection(request, ctx);
    if (!connection) return;
    ctx.store.clearAuthErrors(connection);
    const deliveries = ctx.sendAuthWebhook(connection, { operation: 'refresh', success: true, tags: connection.tags });
    sendJson(request.res, 200, { connectionId: connection.connection_id, errors: connection.errors, webhooks: deliveries.map((d) => d.id) });
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

export const controlRoutes = [
    { method: 'GET', path: '/_emulator/webhooks', handler: listWebhooks },
    { method: 'POST', path: '/_emulator/reset', handler: reset },
    { method: 'POST', path: '/_emulator/connections/:connectionId/refresh-failure', handler: refreshFailure },
    { method: 'POST', path: '/_emulator/connections/:connectionId/refresh-success', handler: refreshSuccess },
    { method: 'POST', path: '/_emulator/rate-limit', handler: rateLimit }
];
