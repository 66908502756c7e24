// Helpers for tests that drive the emulator: a webhook sink and a small HTTP client.
// Kept outside test/ because `node --test test/` would run every .js file there as a test.
import http from 'node:http';
import { after, before, beforeEach } from 'node:test';

import { startEmulator } from '../src/server.js';

export const SECRET_KEY = '3f1c2b7e-9a4d-4c8e-b1f2-6d5e4a3b2c1d';
export const SIGNING_KEY = 'test-signing-key';

/** A config for in-process emulators: fast retries, all three demo integrations. */
export function testConfig(overrides = {}) {
    return {
        environment: 'dev',
        secretKey: SECRET_KEY,
        webhookSigningKey: SIGNING_KEY,
        webhookUrls: [],
        integrations: [
            { id: 'github', provider: 'github', authMode: 'API_KEY' },
            { id: 'linear', provider: 'linear', authMode: 'API_KEY' },
            { id: 'exa', provider: 'exa', authMode: 'API_KEY' },
            { id: 'google', provider: 'google', authMode: 'OAUTH2' }
        ],
        retryDelaysMs: [30, 60],
        webhookTimeoutMs: 2000,
        ...overrides
    };
}

/**
 * A local HTTP server that records every request. `respond(request, index)` returns (or resolves
 * to) a status code, or 'hang' (never answer) or 'drop' (reset the socket); default 200.
 */
export async function startSink(respond = () => 200) {
    const requests = [];
    const waiters = [];
    const server = http.createServer((req, res) => {
        const chunks = [];
        req.on('data', (chunk) => chunks.push(chunk));
        req.on('end', () => {
            const request = { method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), at: Date.now() };
            requests.push(request);
            for (const waiter of [...waiters]) waiter();
            void Promise.resolve(respond(request, requests.length - 1)).then((action) => {
                if (action === 'hang') return;
                if (action === 'drop') return req.socket.destroy();
                res.writeHead(action, { 'Content-Type': 'application/json' });
                res.end('{}');
            });
        });
    });
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${server.address().port}/webhooks/nango`;
    return {
        url,
        requests,
        /** Resolves once `count` requests arrived (rejects after `timeoutMs`). */
        waitFor(count, timeoutMs = 3000) {
            return new Promise((resolve, reject) => {
                const check = () => {
                    if (requests.length >= count) {
                        waiters.splice(waiters.indexOf(check), 1);
                        clearTimeout(timer);
                        resolve(requests);
                    }
                };
                const timer = setTimeout(() => {
                    waiters.splice(waiters.indexOf(check), 1);
                    reject(new Error(`sink got ${requests.length} requests, expected ${count}`));
                }, timeoutMs);
                waiters.push(check);
                check();
            });
        },
        close: () =>
            new Promise((resolve) => {
                server.close(() => resolve());
                server.closeAllConnections();
            })
    };
}

/** A client bound to an emulator URL. Returns {status, headers, body (parsed JSON or null), text}. */
export function client(baseUrl) {
    async function call(method, path, { token, body, rawBody, contentType, headers = {} } = {}) {
        const finalHeaders = { ...headers };
        if (token) finalHeaders.Authorization = `Bearer ${token}`;
        let payload;
        if (rawBody !== undefined) payload = rawBody;
        else if (body !== undefined) payload = JSON.stringify(body);
        if (payload !== undefined) finalHeaders['Content-Type'] = contentType || 'application/json';
        const res = await fetch(`${baseUrl}${path}`, { method, headers: finalHeaders, body: payload });
        const text = await res.text();
        let json = null;
        try {
            json = text ? JSON.parse(text) : null;
        } catch {
            json = null;
        }
        return { status: res.status, headers: res.headers, body: json, text };
    }
    return {
        call,
        get: (path, opts) => call('GET', path, opts),
        post: (path, body, opts = {}) => call('POST', path, { ...opts, body }),
        del: (path, opts) => call('DELETE', path, opts)
    };
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Connections made through the emulator's create control; `spec` as POST /_emulator/connections takes it. */
export async function createConnections(api, spec) {
    const res = await api.post('/_emulator/connections', spec);
    if (res.status !== 201) throw new Error(`create: ${res.status} ${res.text}`);
    return res.body.connections;
}

/** Polls `fn` until it returns a truthy value. */
export async function eventually(fn, { timeoutMs = 3000, intervalMs = 10 } = {}) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        const value = await fn();
        if (value) return value;
        if (Date.now() > deadline) throw new Error('condition not met in time');
        await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
}

/** Creates a session and completes it the way @nangohq/frontend does for an API key. */
export async function authorize(api, { integration = 'exa', apiKey = 'sk-test', session = { tags: { end_user_id: 'user-42' } } } = {}) {
    const created = await api.post('/connect/sessions', session, { token: SECRET_KEY });
    if (created.status !== 201) throw new Error(`session: ${created.status} ${created.text}`);
    const token = created.body.data.token;
    const res = await api.post(`/api-auth/api-key/${integration}?connect_session_token=${token}`, { apiKey });
    return { token, res };
}

/**
 * An in-process emulator that delivers its webhooks to a sink of this file's own, both started once
 * for the file and reset before each test. `respond` decides the sink's answers; `config` adds to
 * testConfig(). Returns the object whose `sink`, `emulator` and `api` (a client) the hooks fill in.
 */
export function emulatorWithSink({ respond, config = {} } = {}) {
    const stack = {};
    before(async () => {
        stack.sink = await startSink(respond);
        stack.emulator = await startEmulator({ port: 0, config: testConfig({ webhookUrls: [stack.sink.url], ...config }) });
        stack.api = client(stack.emulator.url);
    });
    after(async () => {
        await stack.emulator.close();
        await stack.sink.close();
    });
    beforeEach(async () => {
        await stack.api.post('/_emulator/reset');
        stack.sink.requests.length = 0;
    });
    return stack;
}
