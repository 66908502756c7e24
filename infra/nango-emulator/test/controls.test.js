import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { SECRET_KEY, authorize, client, createConnections, eventually, sleep, emulatorWithSink } from '../testkit/index.js';

// API fault injection, the truth about connections, the create control, deletions behind the
// backend's back, runtime settings and reset.

const stack = emulatorWithSink();

const newSession = () => stack.api.post('/connect/sessions', { tags: { end_user_id: 'u1' } }, { token: SECRET_KEY });
const list = (query) => stack.api.get(`/connections?${query}`, { token: SECRET_KEY });
const addFault = (rule) => stack.api.post('/_emulator/faults', rule);
const truth = async (query = '') => (await stack.api.get(`/_emulator/connections${query}`)).body;

function assertControlError(res, pattern) {
    assert.equal(res.status, 400, res.text);
    assert.equal(res.body.error.code, 'invalid_body');
    assert.match(res.body.error.message, pattern);
}

describe('POST /_emulator/faults', () => {
    test('the next N calls of one route answer 503 (a load balancer page); other routes are untouched', async () => {
        const added = await addFault({ route: 'POST /connect/sessions', count: 2, status: 503 });
        assert.equal(added.status, 201);
        assert.deepEqual(added.body.fault, { id: 1, route: 'POST /connect/sessions', probability: 1, status: 503, remaining: 2, hits: 0 });
        for (let i = 0; i < 2; i++) {
            const res = await newSession();
            assert.equal(res.status, 503);
            assert.match(res.headers.get('content-type'), /text\/html/);
            assert.match(res.text, /503 Service Unavailable/);
            assert.equal((await list('limit=1')).status, 200, 'another route');
        }
        assert.equal((await newSession()).status, 201);
        assert.deepEqual((await stack.api.get('/_emulator/faults')).body.faults[0], { id: 1, route: 'POST /connect/sessions', probability: 1, status: 503, remaining: 0, hits: 2 });
    });

    test('500 answers Nango’s {"error":{"code":"server_error"}}; the call has no effect', async () => {
        await addFault({ route: 'DELETE /connections/{connectionId}', count: 1, status: 500 });
        const [conn] = await createConnections(stack.api, { integration: 'exa', webhook: false });
        const path = `/connections/${conn.connection_id}?provider_config_key=exa`;
        const failed = await stack.api.del(path, { token: SECRET_KEY });
        assert.equal(failed.status, 500);
        assert.deepEqual(failed.body, { error: { code: 'server_error' } });
        assert.equal((await stack.api.get(path, { token: SECRET_KEY })).status, 200, 'not deleted');
        assert.equal((await stack.api.del(path, { token: SECRET_KEY })).status, 200);
    });

    test('429 with Retry-After, on every route ("*"); unauthenticated calls do not use the fault up', async () => {
        await addFault({ count: 2, status: 429, retryAfter: 7 });
        assert.equal((await stack.api.get('/connections?limit=1')).status, 401);
        const limited = await list('limit=1');
        assert.equal(limited.status, 429);
        assert.equal(limited.headers.get('retry-after'), '7');
        assert.deepEqual(limited.body, { error: { code: 'too_many_request', method: 'GET', path: '/connections' } });
        assert.equal((await newSession()).status, 429);
        assert.equal((await newSession()).status, 201);
    });

    test('hangMs delays the call, which then proceeds; with a status it then fails', async () => {
        await addFault({ route: 'POST /connect/sessions', count: 1, hangMs: 250 });
        let started = Date.now();
        const slow = await newSession();
        assert.equal(slow.status, 201);
        assert.ok(Date.now() - started >= 240, 'waited');

        await addFault({ route: 'GET /connections', count: 1, hangMs: 150, status: 504 });
        started = Date.now();
        const slowFailure = await list('limit=1');
        assert.equal(slowFailure.status, 504);
        assert.ok(Date.now() - started >= 140);

        // A client that gives up sees a timeout.
        await addFault({ route: 'GET /connections', count: 1, hangMs: 2000 });
        await assert.rejects(fetch(`${stack.emulator.url}/connections?limit=1`, { headers: { Authorization: `Bearer ${SECRET_KEY}` }, signal: AbortSignal.timeout(100) }), {
            name: 'TimeoutError'
        });
    });

    test('GET /connections can fail on page k only, so a listing fails half-way', async () => {
        await createConnections(stack.api, { integration: 'exa', count: 5, webhook: false });
        await addFault({ route: 'GET /connections', page: 1, count: 1, status: 500 });
        assert.equal((await list('limit=2&page=0')).status, 200);
        assert.equal((await list('limit=2&page=1')).status, 500);
        assert.equal((await list('limit=2&page=2')).status, 200);
        const retried = await list('limit=2&page=1');
        assert.equal(retried.status, 200);
        assert.equal(retried.body.connections.length, 2);
        // page 0 is also a call without `page`.
        await addFault({ route: 'GET /connections', page: 0, count: 1, status: 503 });
        assert.equal((await list('limit=2')).status, 503);
    });

    test('malformed: 200 with a JSON body cut short; reset: the connection is dropped', async () => {
        await addFault({ route: 'GET /connections', count: 1, malformed: true });
        const cut = await list('limit=1');
        assert.equal(cut.status, 200);
        assert.equal(cut.body, null);
        assert.throws(() => JSON.parse(cut.text));

        await addFault({ route: 'GET /connections', count: 1, reset: true });
        await assert.rejects(list('limit=1'), TypeError);
        assert.equal((await list('limit=1')).status, 200);
    });

    test('without count a fault lasts until DELETE /_emulator/faults; probability is seeded', async () => {
        await addFault({ route: 'GET /connections', status: 502 });
        for (let i = 0; i < 3; i++) assert.equal((await list('limit=1')).status, 502);
        const cleared = await stack.api.del('/_emulator/faults');
        assert.equal(cleared.status, 204);
        assert.equal((await list('limit=1')).status, 200);

        async function run() {
            await stack.api.post('/_emulator/seed', { seed: 9 });
            await stack.api.del('/_emulator/faults');
            await addFault({ route: 'GET /connections', status: 500, probability: 0.5 });
            const statuses = [];
            for (let i = 0; i < 30; i++) statuses.push((await list('limit=1')).status);
            return statuses;
        }
        const first = await run();
        assert.deepEqual(await run(), first);
        const failures = first.filter((s) => s === 500).length;
        assert.ok(failures > 3 && failures < 27, `about half failed, got ${failures}`);
    });

    test('bad fault bodies are refused', async () => {
        assertControlError(await addFault({ route: 'GET /nope', status: 500 }), /unknown route/);
        assertControlError(await addFault({ status: 404 }), /status must be 429 or 500..599/);
        assertControlError(await addFault({ status: 500, reset: true }), /at most one of/);
        assertControlError(await addFault({ route: 'POST /connect/sessions', page: 1, status: 500 }), /page only applies/);
        assertControlError(await addFault({ status: 500, retryAfter: 3 }), /retryAfter goes with status 429/);
        assertControlError(await addFault({ count: 1 }), /give status, malformed, reset or hangMs/);
        assertControlError(await addFault({ status: 500, count: 0 }), /count must be an integer/);
        assert.deepEqual((await stack.api.get('/_emulator/faults')).body, { faults: [] });
    });
});

describe('GET /_emulator/connections (truth) and POST /_emulator/connections (create)', () => {
    test('the truth lists every connection ever made, with tags, auth-error state and deletion', async () => {
        const { res } = await authorize(stack.api, { integration: 'github', session: { tags: { end_user_id: 'u1', organization_id: 'o1' } } });
        const viaConnect = res.body.connectionId;
        const [broken, removed] = await createConnections(stack.api, { integration: 'exa', count: 2, tags: { end_user_id: 'u2' }, webhook: false });
        await stack.api.post(`/_emulator/connections/${broken.connection_id}/refresh-failure`);
        await stack.api.del(`/connections/${removed.connection_id}?provider_config_key=exa`, { token: SECRET_KEY });

        const all = await truth();
        assert.deepEqual([all.total, all.live, all.deleted], [3, 2, 1]);
        assert.deepEqual(
            all.connections.map((c) => [c.connection_id, c.provider_config_key, c.tags, c.auth_error, c.deleted]),
            [
                [viaConnect, 'github', { end_user_id: 'u1', organization_id: 'o1' }, false, false],
                [broken.connection_id, 'exa', { end_user_id: 'u2' }, true, false],
                [removed.connection_id, 'exa', { end_user_id: 'u2' }, false, true]
            ]
        );
        const row = all.connections[2];
        assert.deepEqual(Object.keys(row), [
            'id',
            'connection_id',
            'provider_config_key',
            'provider',
            'tags',
            'first_tags',
            'errors',
            'auth_error',
            'deleted',
            'created_at',
            'updated_at',
            'deleted_at'
        ]);
        assert.match(row.deleted_at, /\+00:00$/);
        assert.equal(all.connections[1].errors[0].type, 'auth');
        assert.deepEqual(
            (await truth('?deleted=false')).connections.map((c) => c.connection_id),
            [viaConnect, broken.connection_id]
        );
        assert.deepEqual(
            (await truth('?deleted=true&integrationId=exa')).connections.map((c) => c.connection_id),
            [removed.connection_id]
        );
    });

    test('first_tags keeps the owner when a reconnect without tags empties the tags', async () => {
        const { res } = await authorize(stack.api, { integration: 'exa', session: { tags: { end_user_id: 'u1' } } });
        const { connectionId } = res.body;
        const reconnect = await stack.api.post('/connect/sessions/reconnect', { connection_id: connectionId, integration_id: 'exa' }, { token: SECRET_KEY });
        assert.equal((await stack.api.post(`/api-auth/api-key/exa?connect_session_token=${reconnect.body.data.token}`, { apiKey: 'k2' })).status, 200);
        const [row] = (await truth()).connections;
        assert.deepEqual(row.tags, {});
        assert.deepEqual(row.first_tags, { end_user_id: 'u1' });
        const [untagged] = await createConnections(stack.api, { integration: 'exa', webhook: false });
        assert.equal((await truth(`?connectionId=${untagged.connection_id}`)).connections[0].first_tags, null);
    });

    test('create: batch specs with tags, an auth error, a chosen id and date; creation webhooks unless webhook:false', async () => {
        const res = await stack.api.post('/_emulator/connections', {
            connections: [
                { integration: 'github', tags: { end_user_id: 'u1' } },
                { integration: 'exa', tags: { end_user_id: 'u2' }, authError: true, webhook: false, connectionId: 'my-id', createdAt: '2025-06-01T00:00:00Z' }
            ]
        });
        assert.equal(res.status, 201);
        const [withWebhook, quiet] = res.body.connections;
        assert.equal(quiet.connection_id, 'my-id');
        assert.equal(quiet.created_at, '2025-06-01T00:00:00+00:00');

        const [creation] = await stack.sink.waitFor(1);
        await sleep(30);
        assert.equal(stack.sink.requests.length, 1);
        assert.deepEqual(JSON.parse(creation.body), {
            authMode: 'API_KEY',
            connectionId: withWebhook.connection_id,
            environment: 'dev',
            from: 'nango',
            operation: 'creation',
            provider: 'github',
            providerConfigKey: 'github',
            success: true,
            tags: { end_user_id: 'u1' },
            type: 'auth'
        });

        const listed = (await list('limit=10')).body.connections;
        assert.deepEqual(
            listed.map((c) => [c.connection_id, c.errors.map((e) => e.type)]),
            [
                [withWebhook.connection_id, []],
                ['my-id', ['auth']]
            ]
        );
        const full = await stack.api.get('/connections/my-id?provider_config_key=exa', { token: SECRET_KEY });
        assert.equal(full.status, 200);
        assert.deepEqual(full.body.tags, { end_user_id: 'u2' });
    });

    test('2,500 connections in one call, listed across pages of 2,000', async () => {
        const made = await createConnections(stack.api, { integration: 'exa', count: 2500, tags: { organization_id: 'big' }, webhook: false });
        assert.equal(made.length, 2500);
        const page0 = (await list('tags[organization_id]=big&limit=2000&page=0')).body.connections;
        const page1 = (await list('tags[organization_id]=big&limit=2000&page=1')).body.connections;
        assert.deepEqual([page0.length, page1.length], [2000, 500]);
        const seen = new Set([...page0, ...page1].map((c) => c.connection_id));
        assert.equal(seen.size, 2500);
    });

    test('bad specs are refused and nothing is created', async () => {
        assertControlError(await stack.api.post('/_emulator/connections', { integration: 'nope' }), /integration must name a configured integration/);
        assertControlError(await stack.api.post('/_emulator/connections', { integration: 'exa', tags: { '9bad': 'x' } }), /tags/);
        assertControlError(await stack.api.post('/_emulator/connections', { integration: 'exa', tags: { end_user_email: 'not-an-email' } }), /valid email/);
        assertControlError(await stack.api.post('/_emulator/connections', { integration: 'exa', count: 2, connectionId: 'x' }), /do not go together/);
        assertControlError(await stack.api.post('/_emulator/connections', { integration: 'exa', createdAt: 'yesterday' }), /createdAt/);
        assertControlError(await stack.api.post('/_emulator/connections', { integration: 'exa', owner: 'u1' }), /unknown field/);
        assertControlError(
            await stack.api.post('/_emulator/connections', {
                connections: [
                    { integration: 'exa', connectionId: 'dup' },
                    { integration: 'exa', connectionId: 'dup' }
                ]
            }),
            /already exists/
        );
        assertControlError(await stack.api.post('/_emulator/connections', { connections: [{ integration: 'exa' }, { integration: 'exa', authError: 'yes' }] }), /authError/);
        assert.equal((await truth()).total, 0);
        await createConnections(stack.api, { integration: 'exa', connectionId: 'taken', webhook: false });
        assertControlError(await stack.api.post('/_emulator/connections', { integration: 'exa', connectionId: 'taken' }), /already exists/);
    });
});

describe('deleted in Nango behind the backend’s back', () => {
    test('DELETE /_emulator/connections/{id}?webhook=false: gone from the API, no webhook, deleted in the truth', async () => {
        const [conn] = await createConnections(stack.api, { integration: 'exa', webhook: false });
        await addFault({ status: 503 }); // API faults do not touch the control
        const res = await stack.api.del(`/_emulator/connections/${conn.connection_id}?provider_config_key=exa&webhook=false`);
        assert.equal(res.status, 200);
        assert.equal(res.body.connection.deleted, true);
        assert.deepEqual(res.body.webhooks, []);
        await stack.api.del('/_emulator/faults');
        assert.equal((await stack.api.get(`/connections/${conn.connection_id}?provider_config_key=exa`, { token: SECRET_KEY })).status, 404);
        await sleep(30);
        assert.equal(stack.sink.requests.length, 0);
        assert.equal((await stack.api.del(`/_emulator/connections/${conn.connection_id}`)).status, 404, 'already deleted');
        assertControlError(await stack.api.del(`/_emulator/connections/${conn.connection_id}?webhook=no`), /webhook must be true or false/);
    });

    test('without webhook=false it follows sendDeletionWebhooks', async () => {
        const [a, b] = await createConnections(stack.api, { integration: 'exa', count: 2, webhook: false });
        await stack.api.del(`/_emulator/connections/${a.connection_id}`);
        const [deletion] = await stack.sink.waitFor(1);
        assert.equal(JSON.parse(deletion.body).operation, 'deletion');
        await stack.api.post('/_emulator/config', { sendDeletionWebhooks: false });
        await stack.api.del(`/_emulator/connections/${b.connection_id}`);
        await sleep(30);
        assert.equal(stack.sink.requests.length, 1);
    });

    test('refresh-failure with webhook:false changes the state only (a lost refresh failure)', async () => {
        const [conn] = await createConnections(stack.api, { integration: 'exa', webhook: false });
        const res = await stack.api.post(`/_emulator/connections/${conn.connection_id}/refresh-failure`, { webhook: false });
        assert.equal(res.status, 200);
        assert.deepEqual(res.body.webhooks, []);
        assert.equal((await truth()).connections[0].auth_error, true);
        await sleep(30);
        assert.equal(stack.sink.requests.length, 0);
    });
});

describe('settings, seed and reset', () => {
    test('POST /_emulator/config changes runtime settings; bad values are refused', async () => {
        const before_ = (await stack.api.get('/_emulator/config')).body;
        assert.deepEqual(Object.keys(before_).sort(), [
            'allowPrivateWebhookOverride',
            'includeCredentials',
            'retryDelaysMs',
            'sendDeletionWebhooks',
            'sendFailedCredentialsWebhooks',
            'webhookTimeoutMs',
            'webhookUrls'
        ]);
        const changed = await stack.api.post('/_emulator/config', { includeCredentials: true, retryDelaysMs: [1, 2] });
        assert.equal(changed.status, 200);
        assert.equal(changed.body.includeCredentials, true);
        const [conn] = await createConnections(stack.api, { integration: 'exa', webhook: false });
        const full = await stack.api.get(`/connections/${conn.connection_id}?provider_config_key=exa`, { token: SECRET_KEY });
        assert.deepEqual(full.body.credentials, { type: 'API_KEY', apiKey: 'emulator-created' });

        assertControlError(await stack.api.post('/_emulator/config', { sendDeletionWebhooks: 'no' }), /sendDeletionWebhooks must be true or false/);
        assertControlError(await stack.api.post('/_emulator/config', { webhookUrls: ['ftp://x'] }), /webhookUrls/);
        assertControlError(await stack.api.post('/_emulator/config', { secretKey: 'x' }), /unknown field/);
        assertControlError(await stack.api.post('/_emulator/seed', {}), /seed is required/);
    });

    test('reset empties state and removes every fault, drop rule and delivery setting', async () => {
        await createConnections(stack.api, { integration: 'exa', webhook: false });
        await addFault({ status: 500 });
        await stack.api.post('/_emulator/rate-limit', { count: 5 });
        await stack.api.post('/_emulator/webhooks/drop', { mode: 'all' });
        await stack.api.post('/_emulator/webhooks/delivery', { duplicates: 2 });
        await stack.api.post('/_emulator/config', { sendDeletionWebhooks: false });
        assert.equal((await stack.api.post('/_emulator/reset')).status, 204);
        assert.equal((await truth()).total, 0);
        assert.deepEqual((await stack.api.get('/_emulator/faults')).body.faults, []);
        assert.deepEqual((await stack.api.get('/_emulator/webhooks/drop')).body.rules, []);
        assert.equal((await stack.api.get('/_emulator/webhooks/delivery')).body.duplicates, 0);
        assert.equal((await stack.api.get('/_emulator/config')).body.sendDeletionWebhooks, true);
        assert.equal((await list('limit=1')).status, 200);
        await createConnections(stack.api, { integration: 'exa', webhook: true });
        await eventually(async () => (await stack.api.get('/_emulator/webhooks?status=delivered')).body.webhooks.length === 1);
    });
});
