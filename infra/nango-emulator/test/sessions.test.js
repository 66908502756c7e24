import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';

import { startEmulator } from '../src/server.js';
import { SECRET_KEY, authorize, client, testConfig } from '../testkit/index.js';

let emulator;
let api;
before(async () => {
    emulator = await startEmulator({ port: 0, config: testConfig({ publicUrl: 'https://connect.example.test' }) });
    api = client(emulator.url);
});
after(() => emulator.close());
beforeEach(() => api.post('/_emulator/reset'));

const createSession = (body) => api.post('/connect/sessions', body, { token: SECRET_KEY });
const reconnect = (body) => api.post('/connect/sessions/reconnect', body, { token: SECRET_KEY });

function assertInvalidBody(res, errors) {
    assert.equal(res.status, 400, res.text);
    assert.deepEqual(res.body, { error: { code: 'invalid_body', errors } });
}

describe('POST /connect/sessions', () => {
    test('201 with a token, a connect_link and a 30-minute expiry', async () => {
        const before = Date.now();
        const res = await createSession({ tags: { end_user_id: 'user-42' }, allowed_integrations: ['github'] });
        assert.equal(res.status, 201);
        assert.deepEqual(Object.keys(res.body.data), ['token', 'connect_link', 'expires_at']);
        const { token, connect_link, expires_at } = res.body.data;
        assert.match(token, /^nango_connect_session_[a-f0-9]{64}$/);
        assert.equal(connect_link, `https://connect.example.test/?session_token=${token}`);
        const ttl = Date.parse(expires_at) - before;
        assert.ok(ttl > 29.9 * 60_000 && ttl <= 30 * 60_000 + 1000, `ttl ${ttl}`);
        assert.match(expires_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    });

    test('either tags or end_user is required', async () => {
        assertInvalidBody(await createSession({}), [{ code: 'invalid_type', message: 'Invalid input: expected object, received undefined', path: ['end_user'] }]);
        assertInvalidBody(await createSession({ allowed_integrations: ['github'] }), [
            { code: 'invalid_type', message: 'Invalid input: expected object, received undefined', path: ['end_user'] }
        ]);
    });

    test('deprecated end_user alone is accepted', async () => {
        const res = await createSession({ end_user: { id: 'u1', email: 'alice@example.com' }, organization: { id: 'org-7' } });
        assert.equal(res.status, 201, res.text);
    });

    test('unknown fields are refused', async () => {
        assertInvalidBody(await createSession({ tags: { end_user_id: 'u1' }, user_id: 'u1' }), [
            { code: 'unrecognized_keys', message: 'Unrecognized key: "user_id"', path: [] }
        ]);
        assertInvalidBody(await createSession({ end_user: { id: 'u1', name: 'x' } }), [
            { code: 'unrecognized_keys', message: 'Unrecognized key: "name"', path: ['end_user'] }
        ]);
    });

    test('allowed_integrations must exist, errors name the index', async () => {
        assertInvalidBody(await createSession({ tags: { end_user_id: 'u1' }, allowed_integrations: ['github', 'nope', 'exa', 'gone'] }), [
            { code: 'custom', message: 'Integration does not exist', path: ['allowed_integrations', '1'] },
            { code: 'custom', message: 'Integration does not exist', path: ['allowed_integrations', '3'] }
        ]);
    });

    test('integrations_config_defaults keys must exist', async () => {
        assertInvalidBody(await createSession({ tags: { end_user_id: 'u1' }, integrations_config_defaults: { nope: { user_scopes: 'a' } } }), [
            { code: 'custom', message: 'Integration does not exist', path: ['integrations_config_defaults', 'nope'] }
        ]);
    });

    describe('tag rules', () => {
        test('at most 10 keys', async () => {
            const tags = Object.fromEntries(Array.from({ length: 11 }, (_, i) => [`k${i}`, 'v']));
            assertInvalidBody(await createSession({ tags }), [{ code: 'custom', message: 'Tags cannot contain more than 10 keys', path: ['tags'] }]);
            const ten = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`k${i}`, 'v']));
            assert.equal((await createSession({ tags: ten })).status, 201);
        });

        test('key format and length', async () => {
            assertInvalidBody(await createSession({ tags: { '1abc': 'v', 'with space': 'v', ['a'.repeat(65)]: 'v' } }), [
                { code: 'invalid_key', message: 'Invalid key in record', path: ['tags', '1abc'] },
                { code: 'invalid_key', message: 'Invalid key in record', path: ['tags', 'with space'] },
                { code: 'invalid_key', message: 'Invalid key in record', path: ['tags', 'a'.repeat(65)] }
            ]);
            assert.equal((await createSession({ tags: { ['a'.repeat(64)]: 'v', 'A.b/c-d_e': 'v' } })).status, 201);
        });

        test('values are 1..255 characters', async () => {
            assertInvalidBody(await createSession({ tags: { a: '', b: 'x'.repeat(256) } }), [
                { code: 'too_small', message: 'Too small: expected string to have >=1 characters', path: ['tags', 'a'] },
                { code: 'too_big', message: 'Tag values must be at most 255 characters', path: ['tags', 'b'] }
            ]);
            assertInvalidBody(await createSession({ tags: { a: 5 } }), [
                { code: 'invalid_type', message: 'Invalid input: expected string, received number', path: ['tags', 'a'] }
            ]);
        });

        test('end_user_email must be an email, keys must differ after lowercasing', async () => {
            assertInvalidBody(await createSession({ tags: { end_user_email: 'not-an-email' } }), [
                { code: 'custom', message: 'Tag "end_user_email" must be a valid email', path: ['tags'] }
            ]);
            assertInvalidBody(await createSession({ tags: { Org: 'a', org: 'b' } }), [
                { code: 'custom', message: 'Duplicate tag key after case normalization: "org"', path: ['tags'] }
            ]);
        });

        test('keys are lowercased, values kept', async () => {
            const { res } = await authorize(api, { session: { tags: { End_User_Id: 'User-42', ORGANIZATION_ID: 'Org-7' } } });
            const conn = await api.get(`/connections/${res.body.connectionId}?provider_config_key=exa`, { token: SECRET_KEY });
            assert.deepEqual(conn.body.tags, { end_user_id: 'User-42', organization_id: 'Org-7' });
        });
    });

    test('webhook_url_override must not target loopback or nango.dev', async () => {
        assertInvalidBody(await createSession({ tags: { a: 'b' }, webhook_url_override: 'http://127.0.0.1:3000/hook' }), [
            { code: 'custom', message: 'This webhook URL is not allowed.', path: ['webhook_url_override'] }
        ]);
        assertInvalidBody(await createSession({ tags: { a: 'b' }, webhook_url_override: 'https://api.nango.dev/x' }), [
            { code: 'custom', message: "Webhook URLs cannot point to Nango's domain (nango.dev).", path: ['webhook_url_override'] }
        ]);
        assert.equal((await createSession({ tags: { a: 'b' }, webhook_url_override: 'https://hooks.example.com/nango' })).status, 201);
    });
});

describe('GET /connect/session', () => {
    test('tags-only session: no end user, allowed integrations listed', async () => {
        const token = (await createSession({ tags: { end_user_id: 'u1' }, allowed_integrations: ['exa'] })).body.data.token;
        const res = await api.get('/connect/session', { token });
        assert.equal(res.status, 200);
        assert.deepEqual(res.body, {
            data: {
                endUser: null,
                connectUISettings: { showWatermark: true, defaultTheme: 'system', theme: { light: { primary: '#00B2E3' }, dark: { primary: '#00B2E3' } } },
                allowed_integrations: ['exa']
            }
        });
    });

    test('deprecated end_user session exposes the end user', async () => {
        const body = { end_user: { id: 'u1', email: 'alice@example.com', display_name: 'Alice' }, organization: { id: 'org-7', display_name: 'Acme' } };
        const token = (await createSession(body)).body.data.token;
        const res = await api.get('/connect/session', { token });
        assert.deepEqual(res.body.data.endUser, {
            id: 'u1',
            display_name: 'Alice',
            email: 'alice@example.com',
            tags: null,
            organization: { id: 'org-7', display_name: 'Acme' }
        });
        assert.equal(res.body.data.allowed_integrations, undefined);
    });

    test('GET /integrations with a session token lists only the allowed integrations', async () => {
        const token = (await createSession({ tags: { end_user_id: 'u1' }, allowed_integrations: ['exa', 'linear'] })).body.data.token;
        const res = await api.get('/integrations', { token });
        assert.equal(res.status, 200);
        assert.deepEqual(
            res.body.data.map((i) => i.unique_key),
            ['linear', 'exa']
        );
        const all = await api.get('/integrations', { token: SECRET_KEY });
        assert.equal(all.body.data.length, 4);
    });
});

describe('POST /connect/sessions/reconnect', () => {
    test('201 for an existing connection; the session says it is reconnecting', async () => {
        const { res } = await authorize(api, { integration: 'github' });
        const created = await reconnect({ connection_id: res.body.connectionId, integration_id: 'github', tags: { end_user_id: 'user-42' } });
        assert.equal(created.status, 201, created.text);
        assert.match(created.body.data.token, /^nango_connect_session_[a-f0-9]{64}$/);
        const session = await api.get('/connect/session', { token: created.body.data.token });
        assert.equal(session.body.data.isReconnecting, true);
        assert.deepEqual(session.body.data.allowed_integrations, ['github']);
    });

    test('unknown connection/integration pair', async () => {
        const { res } = await authorize(api, { integration: 'github' });
        const expected = { error: { code: 'invalid_body', message: 'ConnectionID or IntegrationId does not exists' } };
        const wrongId = await reconnect({ connection_id: 'nope', integration_id: 'github' });
        assert.equal(wrongId.status, 400);
        assert.deepEqual(wrongId.body, expected);
        const wrongIntegration = await reconnect({ connection_id: res.body.connectionId, integration_id: 'exa' });
        assert.deepEqual(wrongIntegration.body, expected);
    });

    test('allowed_integrations is refused', async () => {
        const { res } = await authorize(api, { integration: 'github' });
        assertInvalidBody(await reconnect({ connection_id: res.body.connectionId, integration_id: 'github', allowed_integrations: ['github'] }), [
            { code: 'unrecognized_keys', message: 'Unrecognized key: "allowed_integrations"', path: [] }
        ]);
    });

    test('connection_id and integration_id are required', async () => {
        assertInvalidBody(await reconnect({}), [
            { code: 'invalid_type', message: 'Invalid input: expected string, received undefined', path: ['connection_id'] },
            { code: 'invalid_type', message: 'Invalid input: expected string, received undefined', path: ['integration_id'] }
        ]);
    });
});

test('a session token is not used up by a connection', async () => {
    const { token, res } = await authorize(api);
    assert.equal(res.status, 200);
    const second = await api.post(`/api-auth/api-key/exa?connect_session_token=${token}`, { apiKey: 'other' });
    assert.equal(second.status, 200);
    assert.notEqual(second.body.connectionId, res.body.connectionId);
});
