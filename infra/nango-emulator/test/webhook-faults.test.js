import assert from 'node:assert/strict';
import { beforeEach, describe, test } from 'node:test';

import { authorize, createConnections, eventually, sleep, emulatorWithSink } from '../testkit/index.js';

// Webhook controls: losing webhooks on purpose (drop rules) and the soak's delivery faults
// (duplicates, reordering, a concurrency limit). Nango's retry policy stays as it is.

let respond;
const stack = emulatorWithSink({ respond: (request, i) => respond(request, i), config: { retryDelaysMs: [20, 40] } });
beforeEach(() => {
    respond = () => 200;
});

const received = () => stack.sink.requests.map((r) => JSON.parse(r.body));
const log = async (query = '') => (await stack.api.get(`/_emulator/webhooks${query}`)).body.webhooks;
const settled = () => eventually(async () => (await log()).every((d) => d.status !== 'pending'), { timeoutMs: 5000 });
const withWebhook = (spec) => createConnections(stack.api, { webhook: true, ...spec });

function assertControlError(res, pattern) {
    assert.equal(res.status, 400, res.text);
    assert.equal(res.body.error.code, 'invalid_body');
    assert.match(res.body.error.message, pattern);
}

describe('POST /_emulator/webhooks/drop', () => {
    test('{count, operation} loses the next creation webhook only; it is logged as dropped', async () => {
        const rule = await stack.api.post('/_emulator/webhooks/drop', { count: 1, operation: 'creation' });
        assert.equal(rule.status, 200);
        assert.deepEqual(rule.body.rules, [{ id: 1, remaining: 1, operation: 'creation', probability: 1, dropped: 0 }]);

        const { res } = await authorize(stack.api, { session: { tags: { end_user_id: 'lost' } } });
        const lostId = res.body.connectionId;
        const [kept] = await withWebhook({ integration: 'exa', tags: { end_user_id: 'kept' } });
        await stack.sink.waitFor(1);
        await settled();
        await sleep(30);
        assert.deepEqual(
            received().map((w) => w.connectionId),
            [kept.connection_id]
        );
        const [dropped] = await log(`?connectionId=${lostId}`);
        assert.equal(dropped.status, 'dropped');
        assert.equal(dropped.droppedBy, 1);
        assert.deepEqual(dropped.attempts, []);
        assert.equal(dropped.payload.operation, 'creation');
        assert.deepEqual((await stack.api.get('/_emulator/webhooks/drop')).body.rules[0], { id: 1, remaining: 0, operation: 'creation', probability: 1, dropped: 1 });
        // The connection exists in Nango all the same: only the webhook was lost.
        assert.equal((await stack.api.get(`/_emulator/connections?connectionId=${lostId}`)).body.connections.length, 1);
    });

    test('a refresh failure of one connection can be lost while other webhooks still arrive', async () => {
        const [a, b] = await createConnections(stack.api, { integration: 'exa', count: 2, webhook: false });
        await stack.api.post('/_emulator/webhooks/drop', { count: 1, connectionId: a.connection_id, operation: 'refresh', success: false });
        await stack.api.post(`/_emulator/connections/${a.connection_id}/refresh-success`); // success: not matched
        await stack.api.post(`/_emulator/connections/${b.connection_id}/refresh-failure`); // other connection: not matched
        await stack.api.post(`/_emulator/connections/${a.connection_id}/refresh-failure`); // dropped
        await stack.api.post(`/_emulator/connections/${a.connection_id}/refresh-failure`); // the rule is used up
        await stack.sink.waitFor(3);
        await settled();
        assert.deepEqual(
            (await log()).map((d) => [d.connectionId === a.connection_id ? 'a' : 'b', d.success, d.status]),
            [
                ['a', true, 'delivered'],
                ['b', false, 'delivered'],
                ['a', false, 'dropped'],
                ['a', false, 'delivered']
            ]
        );
    });

    test('{mode:"all"} drops every webhook until {mode:"off"}', async () => {
        assert.equal((await stack.api.post('/_emulator/webhooks/drop', { mode: 'all' })).body.rules[0].remaining, null);
        await withWebhook({ integration: 'exa', count: 3 });
        const off = await stack.api.post('/_emulator/webhooks/drop', { mode: 'off' });
        assert.deepEqual(off.body, { rules: [] });
        const [after_] = await withWebhook({ integration: 'exa' });
        await stack.sink.waitFor(1);
        await settled();
        assert.deepEqual(
            (await log()).map((d) => d.status),
            ['dropped', 'dropped', 'dropped', 'delivered']
        );
        assert.deepEqual(
            received().map((w) => w.connectionId),
            [after_.connection_id]
        );
    });

    test('probability drops a seeded share, the same share again with the same seed', async () => {
        async function run() {
            await stack.api.post('/_emulator/reset');
            await stack.api.post('/_emulator/seed', { seed: 42 });
            await stack.api.post('/_emulator/webhooks/drop', { mode: 'all', probability: 0.5 });
            await withWebhook({ integration: 'exa', count: 40 });
            return (await log()).map((d) => d.status === 'dropped');
        }
        const first = await run();
        const second = await run();
        assert.deepEqual(first, second);
        const dropped = first.filter(Boolean).length;
        assert.ok(dropped > 5 && dropped < 35, `about half dropped, got ${dropped}`);
        await settled();
    });

    test('bad bodies are refused and change nothing', async () => {
        assertControlError(await stack.api.post('/_emulator/webhooks/drop', {}), /either count or mode/);
        assertControlError(await stack.api.post('/_emulator/webhooks/drop', { count: 0 }), /count must be an integer/);
        assertControlError(await stack.api.post('/_emulator/webhooks/drop', { count: 1, mode: 'all' }), /either count or mode/);
        assertControlError(await stack.api.post('/_emulator/webhooks/drop', { mode: 'some' }), /mode must be/);
        assertControlError(await stack.api.post('/_emulator/webhooks/drop', { count: 1, operation: 'sync' }), /operation must be one of/);
        assertControlError(await stack.api.post('/_emulator/webhooks/drop', { count: 1, probability: 0 }), /probability/);
        assertControlError(await stack.api.post('/_emulator/webhooks/drop', { count: 1, connection_id: 'x' }), /unknown field\(s\) connection_id/);
        assertControlError(await stack.api.post('/_emulator/webhooks/drop', { mode: 'off', operation: 'creation' }), /takes no other field/);
        assert.deepEqual((await stack.api.get('/_emulator/webhooks/drop')).body, { rules: [] });
    });
});

describe('POST /_emulator/webhooks/delivery', () => {
    test('duplicates: every webhook is sent 1 + k times, same bytes, each copy logged', async () => {
        const set = await stack.api.post('/_emulator/webhooks/delivery', { duplicates: 2 });
        assert.deepEqual(set.body, { duplicates: 2, reorderWindowMs: 0, concurrency: 0 });
        const [conn] = await withWebhook({ integration: 'exa', tags: { end_user_id: 'u1' } });
        await stack.sink.waitFor(3);
        await settled();
        await sleep(30);
        assert.equal(stack.sink.requests.length, 3);
        assert.ok(stack.sink.requests.every((r) => r.body === stack.sink.requests[0].body && r.headers['x-nango-hmac-sha256'] === stack.sink.requests[0].headers['x-nango-hmac-sha256']));
        const deliveries = await log();
        assert.deepEqual(
            deliveries.map((d) => d.copy),
            [0, 1, 2]
        );
        assert.equal(new Set(deliveries.map((d) => d.eventId)).size, 1);
        assert.equal(deliveries[0].connectionId, conn.connection_id);
        const stats = (await stack.api.get('/_emulator/webhooks/stats')).body;
        assert.equal(stats.events, 1);
        assert.equal(stats.deliveries, 3);
        assert.equal(stats.duplicates, 2);
        assert.equal(stats.delivered, 3);
        assert.deepEqual(stats.answers, { 200: 3 });
    });

    test('each copy keeps Nango’s retry policy: 3 attempts, only on >= 500', async () => {
        respond = () => 503;
        await stack.api.post('/_emulator/webhooks/delivery', { duplicates: 1 });
        await withWebhook({ integration: 'exa' });
        await stack.sink.waitFor(6);
        await settled();
        await sleep(80);
        assert.equal(stack.sink.requests.length, 6);
        assert.deepEqual(
            (await log()).map((d) => [d.status, d.attempts.map((a) => a.status)]),
            [
                ['failed', [503, 503, 503]],
                ['failed', [503, 503, 503]]
            ]
        );
        const stats = (await stack.api.get('/_emulator/webhooks/stats')).body;
        assert.deepEqual([stats.attempts, stats.retries, stats.failed], [6, 4, 2]);
        assert.deepEqual(stats.answers, { 503: 6 });

        stack.sink.requests.length = 0;
        respond = () => 429;
        await withWebhook({ integration: 'exa' });
        await stack.sink.waitFor(2);
        await sleep(80);
        assert.equal(stack.sink.requests.length, 2, 'a 4xx is not retried, for each copy');
    });

    test('reorder: each copy waits a seeded random delay in the window; the same seed gives the same order', async () => {
        async function run() {
            await stack.api.post('/_emulator/reset');
            stack.sink.requests.length = 0;
            // Concurrency 1 makes the arrival order exactly the order in which the delays end.
            await stack.api.post('/_emulator/webhooks/delivery', { reorderWindowMs: 300, concurrency: 1, seed: 7 });
            const made = await withWebhook({ integration: 'exa', count: 8 });
            await stack.sink.waitFor(8);
            const deliveries = await log();
            const sent = made.map((c) => c.connection_id);
            const arrived = received().map((w) => w.connectionId);
            return { sent, arrived, delays: deliveries.map((d) => d.delayMs) };
        }
        const first = await run();
        assert.ok(first.delays.every((d) => Number.isInteger(d) && d >= 0 && d <= 300));
        const byDelay = first.sent.map((id, i) => [first.delays[i], i, id]).sort((x, y) => x[0] - y[0] || x[1] - y[1]);
        assert.deepEqual(
            first.arrived,
            byDelay.map(([, , id]) => id)
        );
        assert.notDeepEqual(first.arrived, first.sent, 'the seeded delays shuffle this batch');
        const second = await run();
        assert.deepEqual(second.delays, first.delays);
    });

    test('concurrency: at most N deliveries in flight at once; 0 lifts the limit', async () => {
        let active = 0;
        let peak = 0;
        respond = async () => {
            active += 1;
            peak = Math.max(peak, active);
            await sleep(60);
            active -= 1;
            return 200;
        };
        await stack.api.post('/_emulator/webhooks/delivery', { concurrency: 2 });
        await withWebhook({ integration: 'exa', count: 6 });
        await stack.sink.waitFor(6);
        await settled();
        assert.equal(peak, 2);
        assert.equal((await stack.api.get('/_emulator/webhooks/stats')).body.maxInFlight, 2);

        await stack.api.post('/_emulator/reset');
        stack.sink.requests.length = 0;
        peak = 0;
        await withWebhook({ integration: 'exa', count: 6 });
        await stack.sink.waitFor(6);
        await settled();
        assert.equal(peak, 6);
    });

    test('bad settings are refused; a reset restores normal delivery', async () => {
        assertControlError(await stack.api.post('/_emulator/webhooks/delivery', { duplicates: -1 }), /duplicates must be an integer/);
        assertControlError(await stack.api.post('/_emulator/webhooks/delivery', { concurrency: 1.5 }), /concurrency must be an integer/);
        assertControlError(await stack.api.post('/_emulator/webhooks/delivery', { shuffle: true }), /unknown field/);
        await stack.api.post('/_emulator/webhooks/delivery', { duplicates: 3, reorderWindowMs: 10, concurrency: 1 });
        await stack.api.post('/_emulator/reset');
        assert.deepEqual((await stack.api.get('/_emulator/webhooks/delivery')).body, { duplicates: 0, reorderWindowMs: 0, concurrency: 0 });
    });
});
