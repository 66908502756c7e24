import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';

import { startEmulator } from '../src/server.js';
import { authorize, client, eventually, startSink, testConfig } from '../testkit/index.js';

// Delivery policy: at most 3 attempts per URL, waiting retryDelaysMs[0] then [1]; retried on
// HTTP >= 500 and network errors only. Delays are shortened through config.

const DELAYS = [40, 80];

async function withEmulator(webhookUrls, run, overrides = {}) {
    const emulator = await startEmulator({ port: 0, config: testConfig({ webhookUrls, retryDelaysMs: DELAYS, ...overrides }) });
    try {
        await run(client(emulator.url));
    } finally {
        await emulator.close();
    }
}

async function settledDeliveries(api) {
    return eventually(async () => {
        const { webhooks } = (await api.get('/_emulator/webhooks')).body;
        return webhooks.length > 0 && webhooks.every((w) => w.status !== 'pending') && webhooks;
    });
}

test('500, 500, then 200 → 3 attempts spaced by the configured delays', async () => {
    const sink = await startSink((_, i) => (i < 2 ? 500 : 200));
    try {
        await withEmulator([sink.url], async (api) => {
            const started = Date.now();
            await authorize(api);
            const requests = await sink.waitFor(3);
            assert.ok(requests.every((r) => r.body === requests[0].body), 'retries resend the same bytes');
            assert.ok(requests[1].at - requests[0].at >= DELAYS[0] - 5, 'first wait');
            assert.ok(requests[2].at - requests[1].at >= DELAYS[1] - 5, 'second wait');
            assert.ok(Date.now() - started < 2000);
            const [delivery] = await settledDeliveries(api);
            assert.equal(delivery.status, 'delivered');
            assert.deepEqual(delivery.attempts.map((a) => a.status), [500, 500, 200]);
        });
    } finally {
        await sink.close();
    }
});

test('a 4xx answer is never retried (1 attempt)', async () => {
    for (const status of [400, 429]) {
        const sink = await startSink(() => status);
        try {
            await withEmulator([sink.url], async (api) => {
                await authorize(api);
                const [delivery] = await settledDeliveries(api);
                assert.equal(delivery.status, 'failed');
                assert.deepEqual(delivery.attempts.map((a) => a.status), [status]);
                await new Promise((resolve) => setTimeout(resolve, DELAYS[0] + 40));
                assert.equal(sink.requests.length, 1);
            });
        } finally {
            await sink.close();
        }
    }
});

test('a 3xx answer is not followed nor retried', async () => {
    const sink = await startSink(() => 302);
    try {
        await withEmulator([sink.url], async (api) => {
            await authorize(api);
            const [delivery] = await settledDeliveries(api);
            assert.deepEqual(delivery.attempts.map((a) => a.status), [302]);
        });
    } finally {
        await sink.close();
    }
});

test('always 503 → gives up after 3 attempts', async () => {
    const sink = await startSink(() => 503);
    try {
        await withEmulator([sink.url], async (api) => {
            await authorize(api);
            const [delivery] = await settledDeliveries(api);
            assert.equal(delivery.status, 'failed');
            assert.equal(delivery.attempts.length, 3);
            assert.equal(sink.requests.length, 3);
        });
    } finally {
        await sink.close();
    }
});

test('network errors are retried: refused connection and a timed-out attempt', async () => {
    // A port that was free a moment ago: connections to it are refused.
    const probe = net.createServer();
    await new Promise((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const deadUrl = `http://127.0.0.1:${probe.address().port}/webhooks/nango`;
    await new Promise((resolve) => probe.close(resolve));

    await withEmulator([deadUrl], async (api) => {
        await authorize(api);
        const [delivery] = await settledDeliveries(api);
        assert.equal(delivery.status, 'failed');
        assert.deepEqual(delivery.attempts.map((a) => a.error), ['ECONNREFUSED', 'ECONNREFUSED', 'ECONNREFUSED']);
    });

    const sink = await startSink((_, i) => (i === 0 ? 'hang' : 200));
    try {
        await withEmulator(
            [sink.url],
            async (api) => {
                await authorize(api);
                const [delivery] = await settledDeliveries(api);
                assert.equal(delivery.status, 'delivered');
                assert.deepEqual(delivery.attempts.map((a) => a.error || a.status), ['ECONNABORTED', 200]);
            },
            { webhookTimeoutMs: 100 }
        );
    } finally {
        await sink.close();
    }
});

test('answering is not delayed by webhook delivery', async () => {
    const sink = await startSink(() => 'hang');
    try {
        await withEmulator(
            [sink.url],
            async (api) => {
                const started = Date.now();
                const { res } = await authorize(api);
                assert.equal(res.status, 200);
                assert.ok(Date.now() - started < 500, 'the authorization answered while the webhook hangs');
            },
            { webhookTimeoutMs: 1000 }
        );
    } finally {
        await sink.close();
    }
});

test('each URL gets its own attempts; a failing primary does not stop the secondary', async () => {
    const failing = await startSink(() => 500);
    const ok = await startSink(() => 200);
    try {
        await withEmulator([failing.url, ok.url], async (api) => {
            await authorize(api);
            const deliveries = await settledDeliveries(api);
            assert.deepEqual(
                deliveries.map((d) => [d.status, d.attempts.length]),
                [
                    ['failed', 3],
                    ['delivered', 1]
                ]
            );
            assert.equal(ok.requests[0].body, failing.requests[0].body);
        });
    } finally {
        await failing.close();
        await ok.close();
    }
});
