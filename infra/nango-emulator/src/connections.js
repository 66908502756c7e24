import { findIntegration } from './config.js';
import { badQuery, sendError, sendJson } from './http.js';
import { jsonbOrder, pgTimestamp } from './store.js';
import { endUserToApi } from './tags.js';
import { connectionIdParams, deleteConnectionQuery, getConnectionQuery, getConnectionsQuery, validate } from './validation.js';

// GET /connections, GET and DELETE /connections/{id}, with Nango's response shapes.

function connectionSummary(connection) {
    return {
        id: connection.id,
        connection_id: connection.connection_id,
        provider_config_key: connection.provider_config_key,
        provider: connection.provider,
        errors: connection.errors,
        end_user: endUserToApi(connection.end_user),
        tags: jsonbOrder(connection.tags),
        metadata: jsonbOrder(connection.metadata) || null,
        created: pgTimestamp(connection.created_at)
    };
}

// GET /connections/{id}: the list's fields (but `created`), plus the connection's own.
function connectionFull(connection, includeCredentials) {
    const { created: _listOnly, ...summary } = connectionSummary(connection);
    return {
        ...summary,
        connection_config: connection.connection_config || {},
        webhook_url_override: connection.webhook_url_override ?? null,
        created_at: pgTimestamp(connection.created_at),
        updated_at: pgTimestamp(connection.updated_at),
        last_fetched_at: pgTimestamp(connection.last_fetched_at),
        credentials: includeCredentials ? connection.credentials : {}
    };
}

/** Postgres ILIKE: `%` matches any run, `_` any one character, a backslash escapes; case-insensitive. */
function ilike(pattern) {
    let source = '';
    for (let i = 0; i < pattern.length; i++) {
        const ch = pattern[i];
        if (ch === '\\' && i + 1 < pattern.length) source += escapeRegex(pattern[++i]);
        else if (ch === '%') source += '.*';
        else if (ch === '_') source += '.';
        else source += escapeRegex(ch);
    }
    return new RegExp(`^${source}$`, 'is');
}

function escapeRegex(ch) {
    return ch.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/** knex's limit()/offset() take parseInt of the value, so Nango pages with truncated numbers. */
function knexInteger(value) {
    return Number.parseInt(String(value), 10);
}

/**
 * Nango's listConnections: live connections of the environment, filtered, ordered by
 * created_at then id (both descending), then `LIMIT limit OFFSET page * limit`.
 */
export function listConnections(connections, q) {
    const integrationIds = q.integrationId ? q.integrationId.split(',').map((id) => id.trim()) : null;
    // The search is `ILIKE '%<search>%'`, so `%` and `_` in it are wildcards, as on Nango.
    const search = q.search ? ilike(`%${q.search}%`) : null;

    const matches = connections.filter((c) => {
        if (q.connectionId && c.connection_id !== q.connectionId) return false;
        if (integrationIds && !integrationIds.includes(c.provider_config_key)) return false;
        // JSONB containment: every requested tag present with the exact value.
        if (q.tags && !Object.entries(q.tags).every(([key, value]) => c.tags?.[key] === value)) return false;
        if (q.endUserId && c.end_user?.endUserId !== q.endUserId) return false;
        if (q.endUserOrganizationId && c.end_user?.organization?.organizationId !== q.endUserOrganizationId) return false;
        if (search && ![c.connection_id, c.end_user?.displayName, c.end_user?.email].some((s) => typeof s === 'string' && search.test(s))) return false;
        return true;
    });
    matches.sort((a, b) => b.created_at - a.created_at || b.id - a.id);
    // Nango passes `limit || 10_000` and `page` (default 0) to knex.
    const limitValue = q.limit || 10_000;
    const limit = knexInteger(limitValue);
    const offset = knexInteger((q.page || 0) * limitValue);
    return matches.slice(offset, offset + limit);
}

export function getConnections({ res, query }, ctx) {
    const checked = validate(getConnectionsQuery, query);
    if (!checked.ok) return badQuery(res, checked.errors);
    sendJson(res, 200, { connections: listConnections(ctx.store.liveConnections(), checked.value).map(connectionSummary) });
}

export function getConnection({ res, query, params }, ctx) {
    const checkedQuery = validate(getConnectionQuery, query);
    if (!checkedQuery.ok) return badQuery(res, checkedQuery.errors);
    const checkedParams = validate(connectionIdParams, params);
    if (!checkedParams.ok) return sendError(res, 400, 'invalid_uri_params', { errors: checkedParams.errors });

    const key = checkedQuery.value.provider_config_key;
    if (!findIntegration(ctx.config, key)) {
        return sendError(res, 400, 'unknown_provider_config', { message: 'Provider does not exists' });
    }
    const connection = ctx.store.findConnection(checkedParams.value.connectionId, key);
    if (!connection) return sendError(res, 404, 'not_found', { message: 'Failed to find connection' });
    sendJson(res, 200, connectionFull(connection, ctx.config.includeCredentials));
}

export function deleteConnection({ res, query, params }, ctx) {
    const checkedParams = validate(connectionIdParams, params);
    if (!checkedParams.ok) return sendError(res, 400, 'invalid_uri_params', { errors: checkedParams.errors });
    const checkedQuery = validate(deleteConnectionQuery, query);
    if (!checkedQuery.ok) return badQuery(res, checkedQuery.errors);

    const connection = ctx.store.findConnection(checkedParams.value.connectionId, checkedQuery.value.provider_config_key);
    if (!connection) return sendError(res, 400, 'unknown_connection');
    ctx.store.deleteConnection(connection);

    deletedInNango(connection, ctx);
    sendJson(res, 200, { success: true });
}

/** What Nango does on a deletion: the connection leaves the API; newer servers send a webhook. */
export function deletedInNango(connection, ctx, { webhook = ctx.config.sendDeletionWebhooks } = {}) {
    ctx.store.deleteConnection(connection);
    if (!webhook) return [];
    return ctx.sendAuthWebhook(connection, { operation: 'deletion', success: true, tags: connection.tags });
}
