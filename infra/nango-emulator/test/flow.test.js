import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, beforeEach, test } from 'node:test';

import { startEmulator } from '../src/server.js';
import { SECRET_KEY, SIGNING_KEY, client, eventually, startSink, testConfig } from '../testkit/index.js';

// The Connect flow end to end: authorize → creation webhook → refresh failure → reconnect →
// override webhook, plus the other webhook-producing paths.

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const IDENTITY = {
    end_user_id: 'user-42',
    end_user_email: 'alice@example.com',
    end_user_display_name: 'Alice Example',
    organization_id: 'org-7',
    organization_display_name: 'Acme'
};

let primary;
let secondary;
let emulator;
let api;
before(async () => {
    primary = await startSink();
    secondary = await startSink();
    emulator = await startEmulator({ port: 0, config: testConfig({ webhookUrls: [primary.url, secondary.url] }) });
    api = client(emulator.url);
});
after(async () => {
    await emulator.close();
    await primary.close();
    await secondary.close();
});
beforeEach(async () => {
    await api.post('/_emulator/reset');
    primary.requests.length = 0;
    secondary.requests.length = 0;
});

/** The next webhook at the primary sink, checked for signature and identical bytes at the secondary. */
async function nextWebhook() {
    const index = primary.requests.length;
    const [request] = (await primary.waitFor(index + 1)).slice(index);
    await secondary.waitFor(index + 1);
    assert.equal(secondary.requests[index].body, request.body, 'both URLs get identical bytes');
    assert.equal(request.headers['x-nango-hmac-sha256'], createHmac('sha256', SIGNING_KEY).update(request.body).digest('hex'));
    return { raw: request.body, body: JSON.parse(request.body) };
}

async function sessionToken(body) {
    const res = await api.post('/connect/sessions', body, { token: SECRET_KEY });
    assert.equal(res.status, 201, res.text);
    return res.body.data.token;
}

/** Exactly what @nangohq/frontend 0.71.10 sends for nango.auth(integration, {credentials: {apiKey}}). */
function sdkApiKeyAuth(integration, token, apiKey) {
    return api.call('POST', `/api-auth/api-key/${integration}?connect_session_token=${token}`, {
        rawBody: JSON.stringify({ apiKey }),
        headers: { Origin: 'http://127.0.0.1:3000' }
    });
}

test('authorize → creation → refresh failure → reconnect → override', async () => {
    // 1. A new connection.
    const token = await sessionToken({ tags: IDENTITY, allowed_integrations: ['github'] });
    const auth = await sdkApiKeyAuth('github', token, 'ghp_secret');
    assert.equal(auth.status, 200);
    assert.equal(auth.headers.get('access-control-allow-origin'), '*');
    assert.deepEqual(Object.keys(auth.body), ['connectionId', 'providerConfigKey']);
    assert.equal(auth.body.providerConfigKey, 'github');
    const connectionId = auth.body.connectionId;
    assert.match(connectionId, UUID);

    const creation = await nextWebhook();
    assert.equal(
        creation.raw,
        `{"authMode":"API_KEY","connectionId":"${connectionId}","environment":"dev","from":"nango","operation":"creation","provider":"github","providerConfigKey":"github","success":true,"tags":{"end_user_display_name":"Alice Example","end_user_email":"alice@example.com","end_user_id":"user-42","organization_display_name":"Acme","organization_id":"org-7"},"type":"auth"}`
    );

    // 2. Listed by tag, newest first.
    const listed = await api.get('/connections?tags[end_user_id]=user-42&tags[organization_id]=org-7&limit=100&page=0', { token: SECRET_KEY });
    assert.equal(listed.status, 200);
    assert.equal(listed.body.connections.length, 1);
    const [summary] = listed.body.connections;
    assert.deepEqual(Object.keys(summary), ['id', 'connection_id', 'provider_config_key', 'provider', 'errors', 'end_user', 'tags', 'metadata', 'created']);
    assert.equal(typeof summary.id, 'number');
    assert.equal(summary.connection_id, connectionId);
    assert.deepEqual(summary.errors, []);
    assert.equal(summary.end_user, null);
    assert.deepEqual(summary.tags, IDENTITY);
    assert.match(summary.created, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$/);

    // 3. The provider starts refusing the credentials.
    const failure = await api.post(`/_emulator/connections/${connectionId}/refresh-failure`);
    assert.equal(failure.status, 200);
    const refresh = await nextWebhook();
    assert.equal(
        refresh.raw,
        `{"authMode":"API_KEY","connectionId":"${connectionId}","environment":"dev","error":{"description":"invalid_grant","type":"refresh_token_external_error"},"from":"nango","operation":"refresh","provider":"github","providerConfigKey":"github","success":false,"tags":{"end_user_display_name":"Alice Example","end_user_email":"alice@example.com","end_user_id":"user-42","organization_display_name":"Acme","organization_id":"org-7"},"type":"auth"}`
    );
    const broken = await api.get(`/connections/${connectionId}?provider_config_key=github`, { token: SECRET_KEY });
    assert.equal(broken.status, 200);
    assert.equal(broken.body.errors.length, 1);
    assert.equal(broken.body.errors[0].type, 'auth');
    assert.equal(broken.body.errors[0].log_id, failure.body.log_id);
    assert.deepEqual(broken.body.credentials, {});

    // 4. Reconnect with the full tag set.
    const reconnect = await api.post('/connect/sessions/reconnect', { connection_id: connectionId, integration_id: 'github', tags: IDENTITY }, { token: SECRET_KEY });
    assert.equal(reconnect.status, 201);
    const again = await sdkApiKeyAuth('github', reconnect.body.data.token, 'ghp_new');
    assert.equal(again.status, 200);
    assert.deepEqual(again.body, { connectionId, providerConfigKey: 'github' });

    const override = await nextWebhook();
    assert.equal(override.body.operation, 'override');
    assert.equal(override.body.success, true);
    assert.equal(override.body.connectionId, connectionId);
    assert.deepEqual(override.body.tags, IDENTITY);
    assert.equal('endUser' in override.body, false);

    const healed = await api.get(`/connections/${connectionId}?provider_config_key=github`, { token: SECRET_KEY });
    assert.deepEqual(healed.body.errors, []);
    assert.equal(healed.body.id, summary.id);
    assert.equal(healed.body.created_at, summary.created);
    assert.equal((await api.get('/connections?limit=10', { token: SECRET_KEY })).body.connections.length, 1);
});

test('a reconnect session without tags resets the connection tags to {} (as real Nango does)', async () => {
    const token = await sessionToken({ tags: IDENTITY });
    const { connectionId } = (await sdkApiKeyAuth('exa', token, 'k1')).body;
    await nextWebhook();

    const reconnect = await api.post('/connect/sessions/reconnect', { connection_id: connectionId, integration_id: 'exa' }, { token: SECRET_KEY });
    assert.equal(reconnect.status, 201);
    assert.equal((await sdkApiKeyAuth('exa', reconnect.body.data.token, 'k2')).status, 200);

    const override = await nextWebhook();
    assert.equal(
        override.raw,
        `{"authMode":"API_KEY","connectionId":"${connectionId}","environment":"dev","from":"nango","operation":"override","provider":"exa","providerConfigKey":"exa","success":true,"tags":{},"type":"auth"}`
    );
    const conn = await api.get(`/connections/${connectionId}?provider_config_key=exa`, { token: SECRET_KEY });
    assert.deepEqual(conn.body.tags, {});
    const byTag = await api.get('/connections?tags[end_user_id]=user-42&limit=10', { token: SECRET_KEY });
    assert.deepEqual(byTag.body.connections, []);
});

test('deprecated end_user sessions add endUser to the webhook and derive tags', async () => {
    const token = await sessionToken({
        end_user: { id: 'user-42', email: 'alice@example.com', display_name: 'Alice Example' },
        organization: { id: 'org-7', display_name: 'Acme Org' }
    });
    const { connectionId } = (await sdkApiKeyAuth('exa', token, 'k')).body;
    const creation = await nextWebhook();
    assert.equal(
        creation.raw,
        `{"authMode":"API_KEY","connectionId":"${connectionId}","endUser":{"endUserEmail":"alice@example.com","endUserId":"user-42","organizationId":"org-7","tags":{}},"environment":"dev","from":"nango","operation":"creation","provider":"exa","providerConfigKey":"exa","success":true,"tags":{"end_user_display_name":"Alice Example","end_user_email":"alice@example.com","end_user_id":"user-42","organization_display_name":"Acme Org","organization_id":"org-7"},"type":"auth"}`
    );
    const listed = await api.get('/connections?limit=10', { token: SECRET_KEY });
    assert.deepEqual(listed.body.connections[0].end_user, {
        id: 'user-42',
        display_name: 'Alice Example',
        email: 'alice@example.com',
        tags: null,
        organization: { id: 'org-7', display_name: 'Acme Org' }
    });
    const search = await api.get('/connections?search=ALICE&limit=10', { token: SECRET_KEY });
    assert.equal(search.body.connections.length, 1);
});

test('a rejected API key sends a creation failure webhook without tags and creates nothing', async () => {
    const token = await sessionToken({ tags: IDENTITY });
    const res = await sdkApiKeyAuth('exa', token, 'invalid');
    assert.equal(res.status, 400);
    assert.equal(res.body.error.code, 'connection_test_failed');
    const failure = await nextWebhook();
    assert.equal(failure.body.operation, 'creation');
    assert.equal(failure.body.success, false);
    assert.equal('tags' in failure.body, false);
    assert.equal('endUser' in failure.body, false);
    assert.deepEqual(Object.keys(failure.body.error), ['description', 'type']);
    assert.equal(failure.body.error.type, 'connection_test_failed');
    assert.match(failure.body.connectionId, UUID);
    assert.deepEqual((await api.get('/connections?limit=10', { token: SECRET_KEY })).body.connections, []);
});

test('a rejected key on a reconnect leaves the connection as it was and sends nothing', async () => {
    const token = await sessionToken({ tags: IDENTITY });
    const { connectionId } = (await sdkApiKeyAuth('exa', token, 'k')).body;
    await nextWebhook();
    const reconnect = await api.post('/connect/sessions/reconnect', { connection_id: connectionId, integration_id: 'exa' }, { token: SECRET_KEY });
    assert.equal((await sdkApiKeyAuth('exa', reconnect.body.data.token, 'invalid')).status, 400);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(primary.requests.length, 1);
    const conn = await api.get(`/connections/${connectionId}?provider_config_key=exa`, { token: SECRET_KEY });
    assert.deepEqual(conn.body.tags, IDENTITY);
});

test('deleting a connection sends a deletion webhook; filters and paging of GET /connections', async () => {
    const ids = [];
    for (const [integration, user] of [
        ['exa', 'u1'],
        ['github', 'u1'],
        ['linear', 'u2']
    ]) {
        const token = await sessionToken({ tags: { end_user_id: user } });
        ids.push((await sdkApiKeyAuth(integration, token, 'k')).body.connectionId);
        await nextWebhook();
    }
    const get = (query) => api.get(`/connections?${query}`, { token: SECRET_KEY }).then((r) => r.body.connections.map((c) => c.connection_id));
    assert.deepEqual(await get('limit=10'), [ids[2], ids[1], ids[0]]);
    assert.deepEqual(await get('tags[end_user_id]=u1&limit=10'), [ids[1], ids[0]]);
    assert.deepEqual(await get('integrationId=exa,linear&limit=10'), [ids[2], ids[0]]);
    assert.deepEqual(await get(`connectionId=${ids[1]}&limit=10`), [ids[1]]);
    assert.deepEqual(await get('limit=2&page=1'), [ids[0]]);

    const deleted = await api.del(`/connections/${ids[0]}?provider_config_key=exa`, { token: SECRET_KEY });
    assert.equal(deleted.status, 200);
    assert.deepEqual(deleted.body, { success: true });
    const deletion = await nextWebhook();
    assert.equal(deletion.body.operation, 'deletion');
    assert.equal(deletion.body.success, true);
    assert.deepEqual(deletion.body.tags, { end_user_id: 'u1' });
    assert.deepEqual(await get('limit=10'), [ids[2], ids[1]]);
    assert.equal((await api.del(`/connections/${ids[0]}?provider_config_key=exa`, { token: SECRET_KEY })).status, 400);
});

test('GET /_emulator/webhooks reports each delivery with its attempts', async () => {
    const token = await sessionToken({ tags: IDENTITY });
    const { connectionId } = (await sdkApiKeyAuth('exa', token, 'k')).body;
    await nextWebhook();
    const log = await eventually(async () => {
        const res = await api.get(`/_emulator/webhooks?connectionId=${connectionId}`);
        return res.body.webhooks.every((w) => w.status === 'delivered') && res.body.webhooks;
    });
    assert.deepEqual(
        log.map((w) => w.url),
        [primary.url, secondary.url]
    );
    assert.equal(log[0].payload.operation, 'creation');
    assert.deepEqual(log[0].attempts.map((a) => a.status), [200]);
});
