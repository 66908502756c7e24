// Request/response plumbing shared by the routes: body reading, qs-style query parsing and the
// CORS headers Nango's public API sends (it allows any origin; the frontend SDK calls it from
// the browser).

export const CORS_ALLOWED_HEADERS =
    'Authorization, Content-Type, Accept, Origin, X-Requested-With, Nango-Activity-Log-Id, Nango-Is-Dry-Run, Nango-Is-Sync, Provider-Config-Key, Connection-Id, Sentry-Trace, Baggage';
const CORS_EXPOSED_HEADERS =
    'Authorization, Etag, Content-Type, Content-Length, X-Nango-Signature, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset';

export function setCorsHeaders(res) {
    res.setHeader('Access-Control-Allow-Origin', '*');
    res.setHeader('Access-Control-Expose-Headers', CORS_EXPOSED_HEADERS);
}

export function answerPreflight(res) {
    res.writeHead(204, {
        'Access-Control-Allow-Origin': '*',
        'Access-Control-Allow-Methods': 'GET,HEAD,PUT,PATCH,POST,DELETE',
        'Access-Control-Allow-Headers': CORS_ALLOWED_HEADERS,
        'Access-Control-Max-Age': '600',
        Vary: 'Access-Control-Request-Headers',
        'Content-Length': '0'
    });
    res.end();
}

export function sendJson(res, status, body, headers = {}) {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text), ...headers });
    res.end(text);
}

export function sendEmpty(res, status) {
    res.writeHead(status);
    res.end();
}

/** `{"error":{code, message?, errors?}}` — Nango's error body; `extra` adds fields such as `payload`. */
export function sendError(res, status, code, { message, errors, extra, headers } = {}) {
    const error = { code };
    if (message !== undefined) error.message = message;
    if (errors !== undefined) error.errors = errors;
    Object.assign(error, extra);
    sendJson(res, status, { error }, headers);
}

// Nango's NangoError-based answers (auth middleware) carry these exact messages and an empty payload.
const NANGO_ERRORS = {
    missing_auth_header: [401, 'Authentication failed. The request is missing the Authorization header.'],
    malformed_auth_header: [401, 'Authentication failed. The Authorization header is malformed.'],
    unknown_account: [401, 'Authentication failed. The provided authorization header does not match any account.'],
    invalid_secret_key_format: [401, 'Authentication failed. The provided secret key is not a UUID v4.'],
    invalid_connect_session_token_format: [
        401,
        'Authentication failed. The provided connect session token is not following correct format: nango_connect_session_RANDOM)'
    ],
    missing_public_key: [401, 'Authentication failed. The request is missing a valid public key parameter.'],
    invalid_public_key: [401, 'Authentication failed. The provided public key is not a UUID v4.'],
    unknown_connect_session_token: [401, 'Authentication failed. The provided connect session token does not match any account.']
};

export function sendNangoError(res, type) {
    const [status, message] = NANGO_ERRORS[type];
    sendError(res, status, type, { message, extra: { payload: {} } });
}

export class BodyError extends Error {}

export async function readBody(req, limitBytes = 1024 * 1024) {
    const chunks = [];
    let size = 0;
    for await (const chunk of req) {
        size += chunk.length;
        if (size > limitBytes) throw new BodyError('request entity too large');
        chunks.push(chunk);
    }
    return Buffer.concat(chunks).toString('utf8');
}

export function isJsonContentType(req) {
    const type = req.headers['content-type'];
    return typeof type === 'string' && type.toLowerCase().startsWith('application/json');
}

/**
 * Parses a query string the way Nango's `qs.parse` does for the shapes its API uses:
 * `a=1`, repeated `a=1&a=2` (array), `a[]=1` (array) and `a[b]=1` / `a[b][c]=1` (nested objects).
 */
export function parseQuery(search) {
    const out = {};
    const params = new URLSearchParams(search.startsWith('?') ? search.slice(1) : search);
    for (const [rawKey, value] of params) {
        const match = rawKey.match(/^([^[\]]+)((?:\[[^[\]]*\])*)$/);
        if (!match || !match[2]) {
            assign(out, rawKey, value);
            continue;
        }
        const keys = [match[1], ...[...match[2].matchAll(/\[([^[\]]*)\]/g)].map((m) => m[1])];
        let target = out;
        for (let i = 0; i < keys.length - 1; i++) {
            const key = keys[i];
            const next = keys[i + 1];
            if (next === '') {
                if (!Array.isArray(target[key])) target[key] = target[key] === undefined ? [] : [target[key]];
                target[key].push(value);
                target = null;
                break;
            }
            if (typeof target[key] !== 'object' || target[key] === null || Array.isArray(target[key])) target[key] = {};
            target = target[key];
        }
        if (target) assign(target, keys[keys.length - 1], value);
    }
    return out;
}

function assign(target, key, value) {
    if (target[key] === undefined) target[key] = value;
    else if (Array.isArray(target[key])) target[key].push(value);
    else target[key] = [target[key], value];
}

/** 400 answers for strict query/body validation, with zod-style `errors`. */
export function badQuery(res, errors) {
    sendError(res, 400, 'invalid_query_params', { errors });
}
export function badBody(res, errors) {
    sendError(res, 400, 'invalid_body', { errors });
}
