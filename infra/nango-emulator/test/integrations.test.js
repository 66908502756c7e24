import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { SECRET_KEY, authorize, createConnections, sleep, emulatorWithSink } from '../testkit/index.js';

// DELETE /_emulator/integrations/{id}: an integration removed in Nango. Its connections are
// soft-deleted without any webhook, and the key is unknown to every route from then on
// (docs/nango-api.md §6): GET /connections/{id} answers 400 unknown_provider_config, never 404.

const stack = emulatorWithSink();

const list = async (query) => {
    const res = await stack.api.get(`/connections?${query}`, { token: SECRET_KEY });
    assert.equal(res.status, 200, res.text);
    return res.body.connections.map((c) => c.connection_id);
};

describe('DELETE /_emulator/integrations/{id}', () => {
    test('its connections leave every listing, without a webhook; other integrations keep theirs', async () => {
        const removed = await createConnections(stack.api, { integration: 'github', count: 2, tags: { end_user_id: 'u1' }, webhook: false });
        const [kept] = await createConnections(stack.api, { integration: 'exa', tags: { end_user_id: 'u1' }, webhook: false });

        const res = await stack.api.del('/_emulator/integrations/github');
        assert.equal(res.status, 200, res.text);
        assert.equal(res.body.integration, 'github');
        assert.deepEqual(res.body.connections.map((c) => c.connection_id).sort(), removed.map((c) => c.connection_id).sort());
        assert.ok(res.body.connections.every((c) => c.deleted));

        assert.deepEqual(await list('limit=100'), [kept.connection_id]);
        assert.deepEqual(await list('integrationId=github&limit=100'), []);
        assert.deepEqual(await list(`connectionId=${removed[0].connection_id}&limit=1`), []);
        assert.deepEqual(await list(`connectionId=${removed[0].connection_id}&integrationId=github&limit=1`), []);
        assert.deepEqual(await list('tags[end_user_id]=u1&limit=100'), [kept.connection_id]);

        // Nothing was sent, not even later.
        await sleep(50);
        assert.equal(stack.sink.requests.length, 0);
        assert.equal((await stack.api.get('/_emulator/webhooks')).body.webhooks.length, 0);

        // The truth keeps them, deleted.
        const truth = (await stack.api.get('/_emulator/connections?integrationId=github')).body;
        assert.equal(truth.connections.length, 2);
        assert.ok(truth.connections.every((c) => c.deleted && c.deleted_at));
    });

    test('GET /connections/{id} with the removed key → 400 unknown_provider_config (never 404); DELETE finds nothing', async () => {
        const [conn] = await createConnections(stack.api, { integration: 'github', webhook: false });
        const path = `/connections/${conn.connection_id}?provider_config_key=github`;
        assert.equal((await stack.api.get(path, { token: SECRET_KEY })).status, 200);
        await stack.api.del('/_emulator/integrations/github');

        const read = await stack.api.get(path, { token: SECRET_KEY });
        assert.equal(read.status, 400, read.text);
        assert.equal(read.body.error.code, 'unknown_provider_config');
        const del = await stack.api.del(path, { token: SECRET_KEY });
        assert.equal(del.status, 400, del.text);
        assert.equal(stack.sink.requests.length, 0, 'no deletion webhook either');
    });

    test('new sessions, reconnects and API-key authorizations naming it fail as on Nango', async () => {
        const { res: made } = await authorize(stack.api, { integration: 'github' });
        assert.equal(made.status, 200, made.text);
        const connectionId = made.body.connectionId;
        // A session created before the removal, still valid, that allows it.
        const early = await stack.api.post('/connect/sessions', { tags: { end_user_id: 'u2' }, allowed_integrations: ['github'] }, { token: SECRET_KEY });
        assert.equal(early.status, 201);
        await stack.api.del('/_emulator/integrations/github');

        const session = await stack.api.post('/connect/sessions', { tags: { end_user_id: 'u2' }, allowed_integrations: ['github'] }, { token: SECRET_KEY });
        assert.equal(session.status, 400, session.text);
        assert.equal(session.body.error.code, 'invalid_body');
        assert.equal(session.body.error.errors[0].message, 'Integration does not exist');

        const reconnect = await stack.api.post('/connect/sessions/reconnect', { connection_id: connectionId, integration_id: 'github' }, { token: SECRET_KEY });
        assert.equal(reconnect.status, 400, reconnect.text);
        assert.equal(reconnect.body.error.code, 'invalid_body');

        const auth = await stack.api.post(`/api-auth/api-key/github?connect_session_token=${early.body.data.token}`, { apiKey: 'sk-x' });
        assert.equal(auth.status, 404, auth.text);
        assert.equal(auth.body.error.code, 'unknown_provider_config');

        const integrations = await stack.api.get('/integrations', { token: early.body.data.token });
        assert.deepEqual(integrations.body.data, []);
        assert.deepEqual((await stack.api.get('/_emulator/integrations')).body.integrations.map((i) => i.id), ['linear', 'exa', 'google']);
    });

    test('POST /_emulator/integrations {"id"} creates a removed one again: usable, its old connections stay deleted', async () => {
        const [old] = await createConnections(stack.api, { integration: 'linear', webhook: false });
        await stack.api.del('/_emulator/integrations/linear');
        const restored = await stack.api.post('/_emulator/integrations', { id: 'linear' });
        assert.equal(restored.status, 201, restored.text);
        assert.deepEqual((await stack.api.get('/_emulator/integrations')).body.integrations.map((i) => i.id), ['github', 'linear', 'exa', 'google']);
        assert.deepEqual(await list('integrationId=linear&limit=10'), []);
        const read = await stack.api.get(`/connections/${old.connection_id}?provider_config_key=linear`, { token: SECRET_KEY });
        assert.equal(read.status, 404, 'a known key again: the old connection is just not found');
        const { res } = await authorize(stack.api, { integration: 'linear' });
        assert.equal(res.status, 200, res.text);

        for (const [body, pattern] of [
            [{ id: 'linear' }, /exists/],
            [{ id: 'nope' }, /not one of the configured/],
            [{}, /id is required/],
            [{ id: 'linear', extra: 1 }, /unknown field/]
        ]) {
            const refused = await stack.api.post('/_emulator/integrations', body);
            assert.equal(refused.status, 400, JSON.stringify(body));
            assert.match(refused.body.error.message, pattern);
        }
    });

    test('an unknown or already removed integration → 404; reset brings it back', async () => {
        assert.equal((await stack.api.del('/_emulator/integrations/nope')).status, 404);
        assert.equal((await stack.api.del('/_emulator/integrations/exa')).status, 200);
        const again = await stack.api.del('/_emulator/integrations/exa');
        assert.equal(again.status, 404);
        assert.equal(again.body.error.code, 'unknown_provider_config');
        await stack.api.post('/_emulator/reset');
        const { res } = await authorize(stack.api, { integration: 'exa' });
        assert.equal(res.status, 200, res.text);
    });
});
