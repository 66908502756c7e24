import assert from 'node:assert/strict';
import { after, before, beforeEach, test } from 'node:test';

import { startEmulator } from '../src/server.js';
import { SECRET_KEY, authorize, client, createConnections, testConfig } from '../testkit/index.js';

// GET /_emulator/requests: how many calls of Nango's API each route got, and what they were
// answered, so that a script can measure the Nango calls a backend makes. Control routes are not
// Nango calls and are not counted.

let emulator;
let api;
before(async () => {
    emulator = await startEmulator({ port: 0, config: testConfig() });
    api = client(emulator.url);
});
after(() => emulator.close());
beforeEach(() => api.post('/_emulator/reset'));

const counts = async () => (await api.get('/_emulator/requests')).body;

test('counts calls by route and answer; exact lookups (GET /connections?connectionId=) on their own', async () => {
    assert.deepEqual(await counts(), { total: 0, routes: {}, connectionLookups: { requests: 0, answers: {} } });
    const [conn] = await createConnections(api, { integration: 'exa', webhook: false });
    await api.get(`/connections?connectionId=${conn.connection_id}&integrationId=exa&limit=1`, { token: SECRET_KEY });
    await api.get('/connections?connectionId=nope&limit=1', { token: SECRET_KEY });
    await api.get('/connections?limit=100', { token: SECRET_KEY });
    await api.get('/connections?limit=0', { token: SECRET_KEY });
    await api.get(`/connections/${conn.connection_id}?provider_config_key=exa`, { token: SECRET_KEY });
    await api.get('/connections?limit=1');
    await api.get('/nowhere', { token: SECRET_KEY });
    await authorize(api);
    await api.get('/health'); // not a Nango API call: not counted

    assert.deepEqual(await counts(), {
        total: 9,
        routes: {
            'GET /connections': { requests: 5, answers: { 200: 3, 400: 1, 401: 1 } },
            'GET /connections/:connectionId': { requests: 1, answers: { 200: 1 } },
            'POST /api-auth/api-key/:providerConfigKey': { requests: 1, answers: { 200: 1 } },
            'POST /connect/sessions': { requests: 1, answers: { 201: 1 } },
            unmatched: { requests: 1, answers: { 404: 1 } }
        },
        connectionLookups: { requests: 2, answers: { 200: 2 } }
    });
});

test('a fault counts as what it answered (429, 500, a reset socket); DELETE clears the counts, reset too', async () => {
    await api.post('/_emulator/faults', { route: 'GET /connections', count: 1, status: 500 });
    await api.post('/_emulator/faults', { route: 'GET /connections', count: 1, reset: true });
    await api.post('/_emulator/rate-limit', { count: 1 });
    await api.get('/connections?limit=1', { token: SECRET_KEY });
    await api.get('/connections?limit=1', { token: SECRET_KEY });
    await assert.rejects(api.get('/connections?connectionId=x&limit=1', { token: SECRET_KEY }));
    await api.get('/connections?limit=1', { token: SECRET_KEY });
    const after = await counts();
    assert.deepEqual(after.routes['GET /connections'], { requests: 4, answers: { 200: 1, 429: 1, 500: 1, reset: 1 } });
    assert.deepEqual(after.connectionLookups, { requests: 1, answers: { reset: 1 } });

    assert.equal((await api.del('/_emulator/requests')).status, 204);
    assert.equal((await counts()).total, 0);
    await api.get('/connections?limit=1', { token: SECRET_KEY });
    assert.equal((await counts()).total, 1);
    await api.post('/_emulator/reset');
    assert.equal((await counts()).total, 0);
});
