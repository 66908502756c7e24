import { findIntegration } from './config.js';
import { badBody, badQuery, sendEmpty, sendError, sendJson } from './http.js';
import { endUserFromApi, endUserToApi, tagsFromEndUser } from './tags.js';
import { emptyObject, postReconnectBody, postSessionBody, postSessionBodyTagsOnly, validate } from './validation.js';

// Connect sessions: creation and reconnection with the secret key (backend side), and what the
// Connect UI reads with the session token (GET/DELETE /connect/session, GET /integrations).

// Nango's defaults for an environment that never customised Connect UI.
const CONNECT_UI_SETTINGS = { showWatermark: true, defaultTheme: 'system', theme: { light: { primary: '#00B2E3' }, dark: { primary: '#00B2E3' } } };

/** These routes take no query string at all; any key is an invalid_query_params. */
function requireEmptyQuery(res, query) {
    const checked = validate(emptyObject, query);
    if (!checked.ok) badQuery(res, checked.errors);
    return checked.ok;
}

/** Nango's checkIntegrationsExist for the keys of integrations_config_defaults / overrides. */
function unknownIntegrationKeys(config, records, field) {
    return Object.keys(records || {})
        .filter((key) => !findIntegration(config, key))
        .map((key) => ({ code: 'custom', message: 'Integration does not exist', path: [field, key] }));
}

function checkSessionIntegrations(res, config, body) {
    const errors = [];
    (body.allowed_integrations || []).forEach((key, i) => {
        if (!findIntegration(config, key)) errors.push({ code: 'custom', message: 'Integration does not exist', path: ['allowed_integrations', String(i)] });
    });
    if (errors.length > 0) {
        badBody(res, errors);
        return false;
    }
    const recordErrors = [
        ...unknownIntegrationKeys(config, body.integrations_config_defaults, 'integrations_config_defaults'),
        ...unknownIntegrationKeys(config, body.overrides, 'overrides')
    ];
    if (recordErrors.length > 0) {
        badBody(res, recordErrors);
        return false;
    }
    // Cloud plans without the feature refuse docs_connect overrides.
    if (Object.values(body.overrides || {}).some((value) => value.docs_connect)) {
        sendError(res, 403, 'forbidden', { message: 'You are not allowed to override the docs connect url' });
        return false;
    }
    return true;
}

function integrationsConfigDefaults(body) {
    if (!body.integrations_config_defaults) return null;
    return Object.fromEntries(
        Object.entries(body.integrations_config_defaults).map(([key, value]) => [
            key,
            { user_scopes: value.user_scopes, authorization_params: value.authorization_params, connectionConfig: value.connection_config }
        ])
    );
}

function sessionCreated(res, ctx, session) {
    const link = new URL(ctx.connectUiUrl());
    if (!link.pathname.endsWith('/')) link.pathname += '/';
    link.searchParams.set('session_token', session.token);
    sendJson(res, 201, { data: { token: session.token, connect_link: link.toString(), expires_at: session.expiresAt.toISOString() } });
}

export function postConnectSessions({ res, query, body }, ctx) {
    if (!requireEmptyQuery(res, query)) return;
    const opts = { allowPrivateWebhookOverride: ctx.config.allowPrivateWebhookOverride };
    let checked = validate(postSessionBody, body, opts);
    if (!checked.ok) {
        const isObject = body && typeof body === 'object' && !Array.isArray(body);
        if (isObject && 'tags' in body && !('end_user' in body)) {
            checked = validate(postSessionBodyTagsOnly, body, opts);
        }
        if (!checked.ok) return badBody(res, checked.errors);
    }
    const input = checked.value;
    if (!checkSessionIntegrations(res, ctx.config, input)) return;

    const session = ctx.store.createSession({
        connectionId: null,
        connectionEndUser: null,
        endUser: input.end_user ? endUserFromApi(input.end_user, input.organization) : null,
        allowedIntegrations: input.allowed_integrations && input.allowed_integrations.length > 0 ? input.allowed_integrations : null,
        integrationsConfigDefaults: integrationsConfigDefaults(input),
        overrides: input.overrides || null,
        webhookUrlOverride: input.webhook_url_override || null,
        tags: { ...tagsFromEndUser(input.end_user, input.organization), ...input.tags }
    });
    sessionCreated(res, ctx, session);
}

export function postConnectSessionsReconnect({ res, query, body }, ctx) {
    if (!requireEmptyQuery(res, query)) return;
    const checked = validate(postReconnectBody, body, { allowPrivateWebhookOverride: ctx.config.allowPrivateWebhookOverride });
    if (!checked.ok) return badBody(res, checked.errors);
    const input = checked.value;

    const connection = ctx.store.findConnection(input.connection_id, input.integration_id);
    if (!connection) {
        return sendError(res, 400, 'invalid_body', { message: 'ConnectionID or IntegrationId does not exists' });
    }
    if (!checkSessionIntegrations(res, ctx.config, input)) return;

    const session = ctx.store.createSession({
        connectionId: connection.id,
        connectionEndUser: connection.end_user,
        endUser: input.end_user ? endUserFromApi(input.end_user, input.organization) : null,
        allowedIntegrations: [input.integration_id],
        integrationsConfigDefaults: integrationsConfigDefaults(input),
        overrides: input.overrides || null,
        webhookUrlOverride: input.webhook_url_override || null,
        // Without `tags` (and end_user) this is {}: completing the session then wipes the
        // connection's tags, which is what a real Nango server does.
        tags: { ...tagsFromEndUser(input.end_user, input.organization), ...input.tags }
    });
    sessionCreated(res, ctx, session);
}

export function getConnectSession({ res, query, body, auth }) {
    if (!requireEmptyQuery(res, query)) return;
    if (body !== undefined) {
        const empty = validate(emptyObject, body);
        if (!empty.ok) return badBody(res, empty.errors);
    }
    const { session } = auth;
    const data = {
        endUser: endUserToApi(session.connectionEndUser || session.endUser),
        connectUISettings: CONNECT_UI_SETTINGS
    };
    if (session.allowedIntegrations) data.allowed_integrations = session.allowedIntegrations;
    if (session.integrationsConfigDefaults) {
        data.integrations_config_defaults = Object.fromEntries(
            Object.entries(session.integrationsConfigDefaults).map(([key, value]) => [
                key,
                { connection_config: value.connectionConfig, authorization_params: value.authorization_params }
            ])
        );
    }
    if (session.connectionId) data.isReconnecting = true;
    if (session.overrides) data.overrides = session.overrides;
    sendJson(res, 200, { data });
}

export function deleteConnectSession({ res, auth }, ctx) {
    ctx.store.deleteSession(auth.session.token);
    sendEmpty(res, 204);
}

export function getIntegrations({ res, query, auth }, ctx) {
    if (!requireEmptyQuery(res, query)) return;
    const allowed = auth.session?.allowedIntegrations;
    const data = ctx.config.integrations
        .filter((integration) => !allowed || allowed.includes(integration.id))
        .map((integration) => ({
            unique_key: integration.id,
            provider: integration.provider,
            display_name: integration.displayName,
            logo: `https://app.nango.dev/images/template-logos/${integration.provider}.svg`,
            forward_webhooks: true,
            created_at: integration.createdAt.toISOString(),
            updated_at: integration.createdAt.toISOString()
        }));
    sendJson(res, 200, { data });
}
