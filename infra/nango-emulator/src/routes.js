import { postApiKeyAuthorization } from './api-auth.js';
import { connectSessionAuth, connectSessionOrPublicKeyAuth, connectSessionOrSecretKeyAuth, secretKeyAuth } from './auth.js';
import { deleteConnection, getConnection, getConnections } from './connections.js';
import { deleteConnectSession, getConnectSession, getIntegrations, postConnectSessions, postConnectSessionsReconnect } from './sessions.js';

// Nango's public API routes that the Connect flow touches. Each route names its auth check;
// the pipeline in app.js runs content-type, auth and rate-limit checks before the handler, in
// Nango's order. Handlers get ({req, res, query, body, params, auth}, ctx).

/** `auth` names the check in auth.js; `json` marks Nango's routers that refuse non-JSON content types. */
export const publicRoutes = [
    { method: 'POST', path: '/connect/sessions', auth: secretKeyAuth, json: true, handler: postConnectSessions },
    { method: 'POST', path: '/connect/sessions/reconnect', auth: secretKeyAuth, json: true, handler: postConnectSessionsReconnect },
    { method: 'GET', path: '/connect/session', auth: connectSessionAuth, json: true, handler: getConnectSession },
    { method: 'DELETE', path: '/connect/session', auth: connectSessionAuth, json: true, handler: deleteConnectSession },
    { method: 'GET', path: '/integrations', auth: connectSessionOrSecretKeyAuth, json: true, handler: getIntegrations },
    { method: 'GET', path: '/connections', auth: secretKeyAuth, json: true, handler: getConnections },
    { method: 'GET', path: '/connections/:connectionId', auth: secretKeyAuth, json: true, handler: getConnection },
    { method: 'DELETE', path: '/connections/:connectionId', auth: secretKeyAuth, json: true, handler: deleteConnection },
    { method: 'POST', path: '/api-auth/api-key/:providerConfigKey', auth: connectSessionOrPublicKeyAuth, json: true, handler: postApiKeyAuthorization }
];
