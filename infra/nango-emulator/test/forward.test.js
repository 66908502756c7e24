import assert from 'node:assert/strict';
import { beforeEach, describe, test } from 'node:test';

import { hmacSignature, legacySignature } from '../src/webhooks.js';
import { SIGNING_KEY, authorize, emulatorWithSink } from '../testkit/index.js';

// POST /_emulator/webhooks/forward: a provider body that Nango matches to no connection, forwarded
// unwrapped and signed like an auth webhook (docs/nango-api.md §6). What the receiver gets must be
// indistinguishable from a real auth webhook but for its bytes.

// The sink answers as told by `answers` (index → status), default 200.
let answers = [];
const stack = emulatorWithSink({ respond: (_, i) => answers[i] ?? 200, config: { retryDelaysMs: [20, 40] } });
beforeEach(() => {
    answers = [];
});

const forward = (body, query = '') => stack.api.call('POST', `/_emulator/webhooks/forward${query}`, { rawBody: typeof body === 'string' ? body : JSON.stringify(body) });

describe('POST /_emulator/webhooks/forward', () => {
    test('a forged auth deletion arrives re-serialized with sorted keys, both signatures valid, and the headers of a real auth webhook', async () => {
        const res = await forward('{ "type": "auth", "operation": "deletion", "connectionId": "c-1", "from": "nango", "success": true, "providerConfigKey": "exa" }');
        assert.equal(res.status, 200, res.text);
        const expected = '{"connectionId":"c-1","from":"nango","operation":"deletion","providerConfigKey":"exa","success":true,"type":"auth"}';
        assert.equal(res.body.body, expected);
        assert.equal(res.body.delivered, true);
        assert.equal(res.body.deliveries.length, 1);
        assert.equal(res.body.deliveries[0].status, 'delivered');
        assert.deepEqual(res.body.deliveries[0].attempts.map((a) => a.status), [200]);

        // The answer comes after the delivery: the sink already has it.
        assert.equal(stack.sink.requests.length, 1);
        const [forged] = stack.sink.requests;
        assert.equal(forged.body, expected);
        assert.equal(forged.headers['x-nango-hmac-sha256'], hmacSignature(SIGNING_KEY, expected));
        assert.equal(forged.headers['x-nango-signature'], legacySignature(SIGNING_KEY, expected));

        // A real auth webhook, for comparison: the same header names and the same user agent.
        await authorize(stack.api);
        const [, real] = await stack.sink.waitFor(2);
        const names = (headers) => Object.keys(headers).sort();
        assert.deepEqual(names(forged.headers), names(real.headers));
        assert.equal(forged.headers['user-agent'], real.headers['user-agent']);
        assert.match(forged.headers['user-agent'], /^nango\//);
        assert.equal(forged.headers['content-type'], real.headers['content-type']);
    });

    test('any JSON value: an array, a string, a number, null, nested objects (keys sorted at every depth)', async () => {
        for (const [sent, expected] of [
            ['[ {"b":1,"a":2}, 3 ]', '[{"a":2,"b":1},3]'],
            ['"auth"', '"auth"'],
            ['42', '42'],
            ['null', 'null'],
            ['{"z":{"y":[{"b":1,"a":0}],"x":true},"a":"é"}', '{"a":"é","z":{"x":true,"y":[{"a":0,"b":1}]}}']
        ]) {
            const before = stack.sink.requests.length;
            const res = await forward(sent);
            assert.equal(res.status, 200, `${sent}: ${res.text}`);
            assert.equal(res.body.delivered, true, sent);
            const got = stack.sink.requests[before];
            assert.equal(got.body, expected, sent);
            assert.equal(got.headers['x-nango-hmac-sha256'], hmacSignature(SIGNING_KEY, expected), sent);
        }
        const { webhooks } = (await stack.api.get('/_emulator/webhooks')).body;
        assert.equal(webhooks.length, 5);
        assert.ok(webhooks.every((w) => w.forwarded === true));
        assert.deepEqual(webhooks[0].payload, [{ a: 2, b: 1 }, 3]);
    });

    test('Nango’s retry policy applies: 500, 500, 200 → delivered on the third attempt; the stats count it', async () => {
        answers = [500, 500];
        const res = await forward({ type: 'auth', operation: 'creation', connectionId: 'c-2' });
        assert.equal(res.status, 200, res.text);
        assert.equal(res.body.delivered, true);
        assert.deepEqual(res.body.deliveries[0].attempts.map((a) => a.status), [500, 500, 200]);
        assert.equal(stack.sink.requests.length, 3);
        const stats = (await stack.api.get('/_emulator/webhooks/stats')).body;
        assert.equal(stats.events, 1);
        assert.equal(stats.attempts, 3);
        assert.equal(stats.retries, 2);
        assert.deepEqual(stats.answers, { 200: 1, 500: 2 });
    });

    test('a 4xx answer is final: one attempt, delivered false', async () => {
        answers = [401];
        const res = await forward([1, 2]);
        assert.equal(res.status, 200, res.text);
        assert.equal(res.body.delivered, false);
        assert.equal(res.body.deliveries[0].status, 'failed');
        assert.deepEqual(res.body.deliveries[0].attempts.map((a) => a.status), [401]);
    });

    test('drop rules and duplicates apply as to any webhook', async () => {
        await stack.api.post('/_emulator/webhooks/drop', { count: 1, operation: 'deletion' });
        const dropped = await forward({ type: 'auth', operation: 'deletion', connectionId: 'c-3' });
        assert.equal(dropped.body.delivered, false);
        assert.equal(dropped.body.deliveries[0].status, 'dropped');
        assert.equal(stack.sink.requests.length, 0);

        await stack.api.post('/_emulator/webhooks/delivery', { duplicates: 1 });
        const twice = await forward({ type: 'forward', payload: {} });
        assert.equal(twice.body.delivered, true);
        assert.equal(twice.body.deliveries.length, 2);
        assert.equal(stack.sink.requests.length, 2);
        assert.equal(stack.sink.requests[0].body, stack.sink.requests[1].body);
    });

    test('?wait=false answers 202 at once with the pending deliveries', async () => {
        const res = await forward({ type: 'auth' }, '?wait=false');
        assert.equal(res.status, 202, res.text);
        assert.equal(res.body.deliveries[0].status, 'pending');
        await stack.sink.waitFor(1);
    });

    test('no body, or a body that is not JSON → 400 invalid_body / invalid_json, nothing sent', async () => {
        const empty = await stack.api.call('POST', '/_emulator/webhooks/forward');
        assert.equal(empty.status, 400);
        assert.equal(empty.body.error.code, 'invalid_body');
        const broken = await forward('{"type":');
        assert.equal(broken.status, 400);
        assert.equal(broken.body.error.code, 'invalid_json');
        const badWait = await forward({}, '?wait=maybe');
        assert.equal(badWait.status, 400);
        assert.equal(stack.sink.requests.length, 0);
        assert.equal((await stack.api.get('/_emulator/webhooks')).body.webhooks.length, 0);
    });
});
