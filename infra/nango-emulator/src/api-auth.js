import { randomUUID } from 'node:crypto';

import { findIntegration } from './config.js';
import { badBody, badQuery, sendError, sendJson } from './http.js';
import { apiAuthQuery, apiKeyBody, providerConfigKeyParams, validate } from './validation.js';
import { authWebhookBody } from './webhooks.js';

const CREDENTIALS_INVALID = 'The given credentials were found to be invalid. Please check the credentials and try again.';
// The emulator's stand-in for a provider rejecting a key during Nango's credentials test.
export const INVALID_API_KEY = 'invalid';

/**
 * POST /api-auth/api-key/{integration}?connect_session_token=... with {"apiKey": "..."} — what
 * @nangohq/frontend's nango.auth(integration, {credentials: {apiKey}}) sends. Steps and errors
 * follow Nango's postPublicApiKeyAuthorization.
 */
export function postApiKeyAuthorization({ res, query, body, params, auth }, ctx) {
    const checkedBody = validate(apiKeyBody, body);
    if (!checkedBody.ok) return badBody(res, checkedBody.errors);
    const checkedQuery = validate(apiAuthQuery, query);
    if (!checkedQuery.ok) return badQuery(res, checkedQuery.errors);
    const checkedParams = validate(providerConfigKeyParams, params);
    if (!checkedParams.ok) return sendError(res, 400, 'invalid_uri_params', { errors: checkedParams.errors });

    const { session } = auth;
    const { apiKey } = checkedBody.value;
    const { providerConfigKey } = checkedParams.value;
    if (checkedQuery.value.connection_id !== undefined) {
        return badQuery(res, [{ code: 'custom', message: 'connection_id is forbidden when using session token', path: ['connection_id'] }]);
    }

    const integration = findIntegration(ctx.config, providerConfigKey);
    if (!integration) return sendError(res, 404, 'unknown_provider_config');
    if (integration.authMode !== 'API_KEY') return sendError(res, 400, 'invalid_auth_mode');
    if (session.allowedIntegrations && !session.allowedIntegrations.includes(integration.id)) {
        return sendError(res, 400, 'integration_not_allowed');
    }

    let existing = null;
    if (session.connectionId) {
        existing = ctx.store.findConnectionById(session.connectionId);
        if (!existing) return sendError(res, 400, 'invalid_connection');
    }

    if (apiKey === INVALID_API_KEY) {
        if (!existing && ctx.config.sendFailedCredentialsWebhooks) {
            ctx.sendWebhook(
                authWebhookBody({
                    connectionId: randomUUID(),
                    providerConfigKey,
                    provider: integration.provider,
                    authMode: integration.authMode,
                    environment: ctx.config.environment,
                    operation: 'creation',
                    success: false,
                    error: { type: 'connection_test_failed', description: CREDENTIALS_INVALID }
                }),
                session.webhookUrlOverride
            );
        }
        return sendError(res, 400, 'connection_test_failed', { message: CREDENTIALS_INVALID });
    }

    const { webhook_url: _ignored, ...params_ } = checkedQuery.value.params || {};
    const connectionConfig = { ...params_, ...(session.integrationsConfigDefaults?.[providerConfigKey]?.connectionConfig || {}) };
    const fields = {
        credentials: { type: 'API_KEY', apiKey },
        connectionConfig,
        webhookUrlOverride: session.webhookUrlOverride || null,
        tags: { ...session.tags }
    };
    const connection = existing ? ctx.store.overrideConnection(existing, fields) : ctx.store.createConnection({ integration, ...fields });
    if (session.endUser) connection.end_user = session.endUser;
    ctx.store.clearAuthErrors(connection);

    ctx.sendAuthWebhook(connection, {
        operation: existing ? 'override' : 'creation',
        success: true,
        tags: connection.tags,
        endUser: session.endUser
    });
    sendJson(res, 200, { connectionId: connection.connection_id, providerConfigKey });
}
