import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { after, before, test } from 'node:test';

import { startEmulator } from '../src/server.js';
import { authWebhookBody, hmacSignature, legacySignature, stableStringify } from '../src/webhooks.js';
import { SIGNING_KEY, authorize, client, startSink, testConfig } from '../testkit/index.js';

// The test vector of docs/nango-api.md §5 (real bytes from a Nango server).
const VECTOR_BODY =
    '{"authMode":"OAUTH2","connectionId":"5b1c9a3e-2f4d-4c1a-9e7b-0d3f6a8b2c11","environment":"prod","error":{"description":"invalid_grant","type":"refresh_token_external_error"},"from":"nango","operation":"refresh","provider":"google-calendar","providerConfigKey":"google-calendar","success":false,"tags":{"end_user_id":"user_123"},"type":"auth"}';

test('HMAC signature matches the documented test vector', () => {
    assert.equal(hmacSignature('test-secret', VECTOR_BODY), '7e462b965335e8e28b4277169ff160fd84807daa12013588327edc7e1f112dc7');
});

test('legacy signature is SHA-256 of key followed by body', () => {
    assert.equal(legacySignature('test-secret', VECTOR_BODY), createHash('sha256').update(`test-secret${VECTOR_BODY}`).digest('hex'));
});

test('a refresh-failure body built by the emulator serializes to the exact documented bytes', () => {
    const body = authWebhookBody({
        connectionId: '5b1c9a3e-2f4d-4c1a-9e7b-0d3f6a8b2c11',
        providerConfigKey: 'google-calendar',
        provider: 'google-calendar',
        authMode: 'OAUTH2',
        environment: 'prod',
        operation: 'refresh',
        success: false,
        tags: { end_user_id: 'user_123' },
        error: { type: 'refresh_token_external_error', description: 'invalid_grant' }
    });
    assert.equal(stableStringify(body), VECTOR_BODY);
});

test('stableStringify sorts keys recursively, keeps array order and drops undefined members', () => {
    assert.equal(stableStringify({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: undefined } }), '{"a":{"d":[3,{"y":2,"z":1}]},"b":1}');
});

test('the creation webhook documented for deprecated end_user sessions is reproduced byte for byte', () => {
    const expected =
        '{"authMode":"API_KEY","connectionId":"a2968dec-61fa-4a65-8b14-60bb4a851878","endUser":{"endUserEmail":"alice@example.com","endUserId":"user-42","organizationId":"org-7","tags":{}},"environment":"dev","from":"nango","operation":"creation","provider":"exa","providerConfigKey":"exa-peer","success":true,"tags":{"end_user_display_name":"Alice Example","end_user_email":"alice@example.com","end_user_id":"user-42","organization_display_name":"Acme Org","organization_id":"org-7"},"type":"auth"}';
    const body = authWebhookBody({
        connectionId: 'a2968dec-61fa-4a65-8b14-60bb4a851878',
        providerConfigKey: 'exa-peer',
        provider: 'exa',
        authMode: 'API_KEY',
        environment: 'dev',
        operation: 'creation',
        success: true,
        tags: {
            end_user_id: 'user-42',
            end_user_email: 'alice@example.com',
            end_user_display_name: 'Alice Example',
            organization_id: 'org-7',
            organization_display_name: 'Acme Org'
        },
        endUser: { endUserId: 'user-42', email: 'alice@example.com', displayName: 'Alice Example', tags: null, organization: { organizationId: 'org-7' } }
    });
    assert.equal(stableStringify(body), expected);
});

let sink;
let emulator;
before(async () => {
    sink = await startSink();
    emulator = await startEmulator({ port: 0, config: testConfig({ webhookUrls: [sink.url] }) });
});
after(async () => {
    await emulator.close();
    await sink.close();
});

test('delivered webhooks carry both signature headers over the exact raw body', async () => {
    const api = client(emulator.url);
    const { res } = await authorize(api);
    assert.equal(res.status, 200);
    const [request] = await sink.waitFor(1);
    assert.equal(request.method, 'POST');
    assert.equal(request.url, '/webhooks/nango');
    assert.equal(request.headers['content-type'], 'application/json');
    assert.equal(request.headers['x-nango-hmac-sha256'], createHmac('sha256', SIGNING_KEY).update(request.body).digest('hex'));
    assert.equal(request.headers['x-nango-signature'], createHash('sha256').update(SIGNING_KEY + request.body).digest('hex'));
    assert.match(request.headers['user-agent'], /^nango\/0\.71\.10 /);
    // Compact, sorted: re-serializing the parsed body gives the same bytes.
    assert.equal(stableStringify(JSON.parse(request.body)), request.body);
});
