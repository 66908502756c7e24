import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';

import { startEmulator } from '../src/server.js';
import { SECRET_KEY, authorize, client, testConfig } from '../testkit/index.js';

// Every error body the emulator claims to reproduce from Nango's server.

let emulator;
let api;
before(async () => {
    emulator = await startEmulator({ port: 0, config: testConfig({ sessionTtlMs: 300 }) });
    api = client(emulator.url);
});
after(() => emulator.close());
beforeEach(() => api.post('/_emulator/reset'));

const authMessage = {
    missing_auth_header: 'Authentication failed. The request is missing the Authorization header.',
    invalid_secret_key_format: 'Authentication failed. The provided secret key is not a UUID v4.',
    unknown_account: 'Authentication failed. The provided authorization header does not match any account.',
    invalid_connect_session_token_format:
        'Authentication failed. The provided connect session token is not following correct format: nango_connect_session_RANDOM)',
    unknown_connect_session_token: 'Authentication failed. The provided connect session token does not match any account.',
    missing_public_key: 'Authentication failed. The request is missing a valid public key parameter.'
};

function assertAuthError(res, code) {
    assert.equal(res.status, 401, res.text);
    assert.deepEqual(res.body, { error: { message: authMessage[code], code, payload: {} } });
}

describe('secret key authentication', () => {
    const routes = [
        ['POST', '/connect/sessions'],
        ['POST', '/connect/sessions/reconnect'],
        ['GET', '/connections'],
        ['GET', '/connections/abc?provider_config_key=exa'],
        ['DELETE', '/connections/abc?provider_config_key=exa']
    ];
    for (const [method, path] of routes) {
        test(`${method} ${path}`, async () => {
            const body = method === 'POST' ? {} : undefined;
            assertAuthError(await api.call(method, path, { body }), 'missing_auth_header');
            // HTTP trims the trailing space, so "Bearer " reaches the key check as "Bearer" (as on a real server).
            assertAuthError(await api.call(method, path, { body, headers: { Authorization: 'Bearer ' } }), 'invalid_secret_key_format');
            assertAuthError(await api.call(method, path, { body, token: 'not-a-uuid' }), 'invalid_secret_key_format');
            assertAuthError(await api.call(method, path, { body, token: 'a4b1c2d3-1111-4222-8333-944455566677' }), 'unknown_account');
        });
    }
});

test('POST bodies that are not JSON are refused with 415 before authentication', async () => {
    const res = await api.call('POST', '/connect/sessions', { rawBody: 'tags=x', contentType: 'application/x-www-form-urlencoded' });
    assert.equal(res.status, 415);
    assert.deepEqual(res.body, { error: { code: 'invalid_content_type', message: 'Content-Type header must be application/json' } });
    const apiAuth = await api.call('POST', '/api-auth/api-key/exa', { rawBody: 'apiKey=x', contentType: 'text/plain' });
    assert.equal(apiAuth.status, 415);
});

test('malformed JSON answers 400 invalid_json', async () => {
    const res = await api.call('POST', '/connect/sessions', { rawBody: '{"tags":', token: SECRET_KEY });
    assert.equal(res.status, 400);
    assert.equal(res.body.error.code, 'invalid_json');
});

test('unknown routes answer a JSON 404', async () => {
    const res = await api.get('/nope', { token: SECRET_KEY });
    assert.equal(res.status, 404);
    assert.equal(res.body.error.code, 'not_found');
});

test('CORS: preflight from the frontend origin and headers on answers', async () => {
    const preflight = await api.call('OPTIONS', '/api-auth/api-key/exa?connect_session_token=x', {
        headers: { Origin: 'http://127.0.0.1:3000', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type' }
    });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers.get('access-control-allow-origin'), '*');
    assert.match(preflight.headers.get('access-control-allow-methods'), /POST/);
    assert.match(preflight.headers.get('access-control-allow-headers'), /Content-Type/);
    const answer = await api.get('/connect/session', { headers: { Origin: 'http://127.0.0.1:3000' } });
    assert.equal(answer.headers.get('access-control-allow-origin'), '*');
});

test('429 emulation: the next N authenticated calls answer too_many_request with Retry-After', async () => {
    const set = await api.post('/_emulator/rate-limit', { count: 2, retryAfter: 1 });
    assert.equal(set.status, 200);
    // An unauthenticated call is refused before the rate limiter and does not use up the budget.
    assert.equal((await api.get('/connections')).status, 401);
    for (let i = 0; i < 2; i++) {
        const res = await api.get('/connections?limit=10', { token: SECRET_KEY });
        assert.equal(res.status, 429);
        assert.equal(res.headers.get('retry-after'), '1');
        assert.deepEqual(res.body, { error: { code: 'too_many_request', method: 'GET', path: '/connections' } });
    }
    assert.equal((await api.get('/connections?limit=10', { token: SECRET_KEY })).status, 200);
});

describe('connect session token errors', () => {
    test('GET /connect/session without or with a malformed token', async () => {
        assertAuthError(await api.get('/connect/session'), 'missing_auth_header');
        assertAuthError(await api.get('/connect/session', { token: SECRET_KEY }), 'invalid_connect_session_token_format');
        assertAuthError(await api.get(`/connect/session`, { token: `nango_connect_session_${'0'.repeat(64)}` }), 'unknown_connect_session_token');
    });

    test('POST /api-auth/api-key without token, with a malformed or unknown one, and a public key', async () => {
        assertAuthError(await api.post('/api-auth/api-key/exa', { apiKey: 'k' }), 'missing_public_key');
        assertAuthError(await api.post('/api-auth/api-key/exa?connect_session_token=abc', { apiKey: 'k' }), 'invalid_connect_session_token_format');
        assertAuthError(
            await api.post(`/api-auth/api-key/exa?connect_session_token=nango_connect_session_${'a'.repeat(64)}`, { apiKey: 'k' }),
            'unknown_connect_session_token'
        );
        assertAuthError(await api.post('/api-auth/api-key/exa?public_key=a4b1c2d3-1111-4222-8333-944455566677', { apiKey: 'k' }), 'unknown_account');
    });

    test('an expired session token is unknown', async () => {
        const created = await api.post('/connect/sessions', { tags: { end_user_id: 'u1' } }, { token: SECRET_KEY });
        const token = created.body.data.token;
        assert.equal((await api.get('/connect/session', { token })).status, 200);
        await new Promise((resolve) => setTimeout(resolve, 350));
        assertAuthError(await api.get('/connect/session', { token }), 'unknown_connect_session_token');
        assertAuthError(await api.post(`/api-auth/api-key/exa?connect_session_token=${token}`, { apiKey: 'k' }), 'unknown_connect_session_token');
    });

    test('a deleted session token is unknown', async () => {
        const created = await api.post('/connect/sessions', { tags: { end_user_id: 'u1' } }, { token: SECRET_KEY });
        const token = created.body.data.token;
        const deleted = await api.del('/connect/session', { token });
        assert.equal(deleted.status, 204);
        assertAuthError(await api.get('/connect/session', { token }), 'unknown_connect_session_token');
    });
});

describe('API key authorization errors', () => {
    async function sessionToken(body = { tags: { end_user_id: 'u1' }, allowed_integrations: ['exa'] }) {
        return (await api.post('/connect/sessions', body, { token: SECRET_KEY })).body.data.token;
    }

    test('integration outside allowed_integrations → 400 integration_not_allowed', async () => {
        const token = await sessionToken();
        const res = await api.post(`/api-auth/api-key/github?connect_session_token=${token}`, { apiKey: 'k' });
        assert.equal(res.status, 400);
        assert.deepEqual(res.body, { error: { code: 'integration_not_allowed' } });
    });

    test('unknown integration → 404 unknown_provider_config', async () => {
        const token = await sessionToken({ tags: { end_user_id: 'u1' } });
        const res = await api.post(`/api-auth/api-key/nope?connect_session_token=${token}`, { apiKey: 'k' });
        assert.equal(res.status, 404);
        assert.deepEqual(res.body, { error: { code: 'unknown_provider_config' } });
    });

    test('integration that is not API_KEY → 400 invalid_auth_mode', async () => {
        const token = await sessionToken({ tags: { end_user_id: 'u1' } });
        const res = await api.post(`/api-auth/api-key/google?connect_session_token=${token}`, { apiKey: 'k' });
        assert.equal(res.status, 400);
        assert.deepEqual(res.body, { error: { code: 'invalid_auth_mode' } });
    });

    test('body must be exactly {apiKey: non-empty string}', async () => {
        const token = await sessionToken();
        const empty = await api.post(`/api-auth/api-key/exa?connect_session_token=${token}`, { apiKey: '' });
        assert.equal(empty.status, 400);
        assert.deepEqual(empty.body, {
            error: { code: 'invalid_body', errors: [{ code: 'too_small', message: 'Too small: expected string to have >=1 characters', path: ['apiKey'] }] }
        });
        const wrapped = await api.post(`/api-auth/api-key/exa?connect_session_token=${token}`, { credentials: { apiKey: 'k' } });
        assert.equal(wrapped.status, 400);
        assert.deepEqual(wrapped.body.error.errors, [
            { code: 'invalid_type', message: 'Invalid input: expected string, received undefined', path: ['apiKey'] },
            { code: 'unrecognized_keys', message: 'Unrecognized key: "credentials"', path: [] }
        ]);
    });

    test('connection_id is forbidden with a session token', async () => {
        const token = await sessionToken();
        const res = await api.post(`/api-auth/api-key/exa?connect_session_token=${token}&connection_id=abc`, { apiKey: 'k' });
        assert.equal(res.status, 400);
        assert.deepEqual(res.body, {
            error: { code: 'invalid_query_params', errors: [{ code: 'custom', message: 'connection_id is forbidden when using session token', path: ['connection_id'] }] }
        });
    });

    test('a rejected key → 400 connection_test_failed', async () => {
        const token = await sessionToken();
        const res = await api.post(`/api-auth/api-key/exa?connect_session_token=${token}`, { apiKey: 'invalid' });
        assert.equal(res.status, 400);
        assert.deepEqual(res.body, {
            error: { code: 'connection_test_failed', message: 'The given credentials were found to be invalid. Please check the credentials and try again.' }
        });
    });
});

describe('connections endpoints errors', () => {
    test('GET /connections: unknown query parameter and out-of-range limit/page', async () => {
        const unknown = await api.get('/connections?limit=10&userId=u1', { token: SECRET_KEY });
        assert.equal(unknown.status, 400);
        assert.deepEqual(unknown.body, {
            error: { code: 'invalid_query_params', errors: [{ code: 'unrecognized_keys', message: 'Unrecognized key: "userId"', path: [] }] }
        });
        const range = await api.get('/connections?limit=2001&page=-1', { token: SECRET_KEY });
        assert.deepEqual(range.body.error.errors, [
            { code: 'too_big', message: 'Too big: expected number to be <=2000', path: ['limit'] },
            { code: 'too_small', message: 'Too small: expected number to be >=0', path: ['page'] }
        ]);
        const badTag = await api.get('/connections?tags[9bad]=x', { token: SECRET_KEY });
        assert.deepEqual(badTag.body.error.errors, [{ code: 'invalid_key', message: 'Invalid key in record', path: ['tags', '9bad'] }]);
    });

    test('GET /connections/{id}: missing provider_config_key, unknown integration, unknown connection', async () => {
        const missing = await api.get('/connections/abc', { token: SECRET_KEY });
        assert.equal(missing.status, 400);
        assert.deepEqual(missing.body, {
            error: {
                code: 'invalid_query_params',
                errors: [{ code: 'invalid_type', message: 'Invalid input: expected string, received undefined', path: ['provider_config_key'] }]
            }
        });
        const integration = await api.get('/connections/abc?provider_config_key=nope', { token: SECRET_KEY });
        assert.equal(integration.status, 400);
        assert.deepEqual(integration.body, { error: { code: 'unknown_provider_config', message: 'Provider does not exists' } });
        const unknown = await api.get('/connections/abc?provider_config_key=exa', { token: SECRET_KEY });
        assert.equal(unknown.status, 404);
        assert.deepEqual(unknown.body, { error: { code: 'not_found', message: 'Failed to find connection' } });
    });

    test('DELETE /connections/{id}: unknown connection → 400 unknown_connection', async () => {
        const res = await api.del('/connections/abc?provider_config_key=exa', { token: SECRET_KEY });
        assert.equal(res.status, 400);
        assert.deepEqual(res.body, { error: { code: 'unknown_connection' } });
    });

    test('a connection is found only with its own provider_config_key', async () => {
        const { res } = await authorize(api);
        const other = await api.get(`/connections/${res.body.connectionId}?provider_config_key=github`, { token: SECRET_KEY });
        assert.equal(other.status, 404);
    });
});
