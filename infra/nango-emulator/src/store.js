import { randomBytes, randomUUID } from 'node:crypto';

// In-memory state of one emulated Nango environment. Nothing is persisted: a restart (or
// POST /_emulator/reset) starts from an empty environment, as a fresh Nango would.

export const SESSION_TOKEN_PREFIX = 'nango_connect_session_';

/** Postgres' JSON rendering of a timestamptz, which Nango returns for connection dates. */
export function pgTimestamp(date) {
    return date
        .toISOString()
        .replace(/\.?0+Z$/, 'Z')
        .replace('Z', '+00:00');
}

/** Key order of a Postgres jsonb object (shorter keys first, then bytewise), as Nango returns tags. */
export function jsonbOrder(value) {
    if (!value || typeof value !== 'object' || Array.isArray(value)) return value;
    const keys = Object.keys(value).sort((a, b) => Buffer.byteLength(a) - Buffer.byteLength(b) || Buffer.compare(Buffer.from(a), Buffer.from(b)));
    return Object.fromEntries(keys.map((key) => [key, jsonbOrder(value[key])]));
}

const LOG_ID_ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
function logId() {
    return [...randomBytes(20)].map((b) => LOG_ID_ALPHABET[b % LOG_ID_ALPHABET.length]).join('');
}

function nonEmpty(tags) {
    return tags && Object.keys(tags).length > 0 ? { ...tags } : null;
}

function liveKey(providerConfigKey, connectionId) {
    return `${providerConfigKey}\u0000${connectionId}`;
}

export class Store {
    constructor({ sessionTtlMs, now = () => Date.now() }) {
        this.sessionTtlMs = sessionTtlMs;
        this.now = now;
        this.webhookLog = [];
        this.reset();
    }

    reset() {
        this.sessions = new Map();
        // Every connection the environment ever had, deleted ones included (with `deleted_at`),
        // in creation order: the emulator's truth. `live` indexes the undeleted ones by
        // (provider_config_key, connection_id), the pair Nango looks connections up by.
        this.connections = [];
        this.live = new Map();
        this.nextConnectionId = 1;
        this.rateLimit = { remaining: 0, retryAfter: 1 };
        // Kept as the same array: in-flight deliveries still append to it.
        this.webhookLog.length = 0;
    }

    // ---------- connect sessions

    createSession(fields) {
        const token = `${SESSION_TOKEN_PREFIX}${randomBytes(32).toString('hex')}`;
        const expiresAt = new Date(this.now() + this.sessionTtlMs);
        const session = { ...fields, token, expiresAt, createdAt: new Date(this.now()) };
        this.sessions.set(token, session);
        return session;
    }

    /** A session is valid until it expires; completing a connection does not use it up. */
    findSession(token) {
        const session = this.sessions.get(token);
        if (!session || session.expiresAt.getTime() <= this.now()) return null;
        return session;
    }

    deleteSession(token) {
        return this.sessions.delete(token);
    }

    // ---------- connections

    findConnection(connectionId, providerConfigKey) {
        return this.live.get(liveKey(providerConfigKey, connectionId)) || null;
    }

    /** A live connection by its numeric id (what a reconnect session remembers). */
    findConnectionById(id) {
        const connection = this.connections[id - 1];
        return connection && !connection.deleted_at ? connection : null;
    }

    /** Connections Nango would still list: not deleted. */
    liveConnections() {
        return [...this.live.values()];
    }

    /**
     * `connectionId` and `createdAt` are for the create control; the Connect flow lets Nango
     * pick a UUID and the current time. The caller checks that the id is free.
     */
    createConnection({ integration, credentials, connectionConfig, webhookUrlOverride, tags, connectionId, createdAt }) {
        const now = new Date(this.now());
        const created = createdAt || now;
        const connection = {
            id: this.nextConnectionId++,
            connection_id: connectionId || randomUUID(),
            provider_config_key: integration.id,
            provider: integration.provider,
            auth_mode: integration.authMode,
            credentials,
            connection_config: connectionConfig,
            webhook_url_override: webhookUrlOverride,
            metadata: {},
            tags,
            // Truth only: the first non-empty tags the connection had, i.e. the owner a receiver
            // of every webhook would know, even after a reconnect without tags emptied `tags`.
            first_tags: nonEmpty(tags),
            end_user: null,
            errors: [],
            created_at: created,
            updated_at: created,
            last_fetched_at: created,
            deleted_at: null
        };
        this.connections.push(connection);
        this.live.set(liveKey(connection.provider_config_key, connection.connection_id), connection);
        return connection;
    }

    /** Mirrors Nango's upsert on re-authorization: credentials, config, metadata and tags are replaced. */
    overrideConnection(connection, { credentials, connectionConfig, webhookUrlOverride, tags }) {
        const now = new Date(this.now());
        Object.assign(connection, {
            credentials,
            connection_config: connectionConfig,
            webhook_url_override: webhookUrlOverride,
            metadata: {},
            tags,
            first_tags: connection.first_tags || nonEmpty(tags),
            updated_at: now,
            last_fetched_at: now
        });
        return connection;
    }

    /** Soft delete, as Nango's `deleted` flag: gone from the API, kept in the truth. */
    deleteConnection(connection) {
        connection.deleted_at = new Date(this.now());
        this.live.delete(liveKey(connection.provider_config_key, connection.connection_id));
    }

    markAuthError(connection) {
        const error = { type: 'auth', log_id: logId() };
        connection.errors = [...connection.errors.filter((e) => e.type !== 'auth'), error];
        return error;
    }

    clearAuthErrors(connection) {
        connection.errors = connection.errors.filter((e) => e.type !== 'auth');
    }

    // ---------- rate limiting emulation

    /** Returns true when this API call must be answered with a 429. */
    consumeRateLimit() {
        if (this.rateLimit.remaining <= 0) return false;
        this.rateLimit.remaining -= 1;
        return true;
    }
}
