import { timingSafeEqual } from 'node:crypto';

import { UUID_V4 } from './config.js';
import { sendNangoError } from './http.js';
import { SESSION_TOKEN_PREFIX } from './store.js';

// The checks of Nango's access middleware, in the same order and with the same error codes.
// Each function answers the error itself and returns null, or returns what the route needs.

const SESSION_TOKEN = new RegExp(`^${SESSION_TOKEN_PREFIX}[a-f0-9]{64}$`);

function bearer(req) {
    const header = req.headers.authorization;
    if (!header) return { error: 'missing_auth_header' };
    // Nango takes whatever follows the last "Bearer "; a header without it is used whole.
    const token = header.split('Bearer ').pop();
    if (!token) return { error: 'malformed_auth_header' };
    return { token };
}

function sameSecret(a, b) {
    const left = Buffer.from(a);
    const right = Buffer.from(b);
    return left.length === right.length && timingSafeEqual(left, right);
}

function checkSecretKey(token, config) {
    if (!UUID_V4.test(token)) return 'invalid_secret_key_format';
    if (!sameSecret(token, config.secretKey)) return 'unknown_account';
    return null;
}

function checkSessionToken(token, store) {
    if (!SESSION_TOKEN.test(token)) return { error: 'invalid_connect_session_token_format' };
    const session = store.findSession(token);
    if (!session) return { error: 'unknown_connect_session_token' };
    return { session };
}

export function secretKeyAuth(req, res, { config }) {
    const { token, error } = bearer(req);
    const failure = error || checkSecretKey(token, config);
    if (failure) {
        sendNangoError(res, failure);
        return null;
    }
    return { authType: 'secretKey' };
}

export function connectSessionAuth(req, res, { store }) {
    const { token, error } = bearer(req);
    if (error) {
        sendNangoError(res, error);
        return null;
    }
    const result = checkSessionToken(token, store);
    if (result.error) {
        sendNangoError(res, result.error);
        return null;
    }
    return { authType: 'connectSession', session: result.session };
}

/** Session token first; a token that does not look like one is tried as a secret key. */
export function connectSessionOrSecretKeyAuth(req, res, { config, store }) {
    const { token, error } = bearer(req);
    if (error) {
        sendNangoError(res, error);
        return null;
    }
    const result = checkSessionToken(token, store);
    if (result.session) return { authType: 'connectSession', session: result.session };
    if (token.startsWith(SESSION_TOKEN_PREFIX)) {
        sendNangoError(res, result.error);
        return null;
    }
    const failure = checkSecretKey(token, config);
    if (failure) {
        sendNangoError(res, failure);
        return null;
    }
    return { authType: 'secretKey' };
}

/**
 * The frontend SDK's auth calls carry `connect_session_token` in the query string. Public keys
 * (the deprecated alternative) are not emulated: any well-formed one is an unknown account.
 */
export function connectSessionOrPublicKeyAuth(req, res, { store }, query) {
    const token = query.connect_session_token;
    if (token) {
        const result = checkSessionToken(String(token), store);
        if (result.error) {
            sendNangoError(res, result.error);
            return null;
        }
        return { authType: 'connectSession', session: result.session };
    }
    const publicKey = query.public_key;
    if (!publicKey) {
        sendNangoError(res, 'missing_public_key');
        return null;
    }
    sendNangoError(res, UUID_V4.test(String(publicKey)) ? 'unknown_account' : 'invalid_public_key');
    return null;
}
