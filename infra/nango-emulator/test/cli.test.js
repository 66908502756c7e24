import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

import { DEFAULT_CONFIG_PATH, loadConfigFile, normalizeConfig, parseArgs } from '../src/config.js';
import { authorize, client, startSink, testConfig } from '../testkit/index.js';

const SERVER = fileURLToPath(new URL('../src/server.js', import.meta.url));

test('the shipped emulator.config.json is valid and has the demo integrations', () => {
    const config = normalizeConfig(loadConfigFile(DEFAULT_CONFIG_PATH));
    assert.equal(config.environment, 'dev');
    assert.deepEqual(config.retryDelaysMs, [3000, 6000]);
    assert.deepEqual(config.webhookUrls, ['http://127.0.0.1:3000/webhooks/nango']);
    for (const id of ['github', 'linear', 'exa']) {
        assert.equal(config.integrations.find((i) => i.id === id)?.authMode, 'API_KEY');
    }
});

test('arguments: --config and --port, with or without =', () => {
    assert.deepEqual(parseArgs(['--config', 'a.json', '--port=0']), { configPath: 'a.json', port: 0 });
    assert.throws(() => parseArgs(['--verbose']), /unknown argument --verbose/);
});

test('CLI: env overrides, listening line, connect_link on the real port, Connect UI page, clean SIGTERM', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nango-emulator-'));
    const configPath = join(dir, 'config.json');
    writeFileSync(configPath, JSON.stringify(testConfig({ secretKey: '11111111-2222-4333-8444-555555555555', webhookSigningKey: 'from-file' })));
    const sink = await startSink();
    const secretKey = 'aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee';
    const child = spawn(process.execPath, [SERVER, '--config', configPath], {
        env: {
            ...process.env,
            NANGO_EMULATOR_PORT: '0',
            NANGO_EMULATOR_SECRET_KEY: secretKey,
            NANGO_EMULATOR_WEBHOOK_SIGNING_KEY: 'from-env',
            NANGO_EMULATOR_WEBHOOK_URLS: ` ${sink.url} `
        },
        stdio: ['ignore', 'pipe', 'pipe']
    });
    try {
        const url = await new Promise((resolve, reject) => {
            let out = '';
            const timer = setTimeout(() => reject(new Error(`no listening line: ${out}`)), 5000);
            const early = (code) => reject(new Error(`exited early with ${code}`));
            child.once('exit', early);
            child.stdout.on('data', (chunk) => {
                out += chunk;
                const match = out.match(/^nango emulator listening on (http:\/\/127\.0\.0\.1:\d+)$/m);
                if (match) {
                    clearTimeout(timer);
                    child.off('exit', early);
                    resolve(match[1]);
                }
            });
        });
        const api = client(url);
        assert.deepEqual((await api.get('/health')).body, { result: 'ok' });

        const created = await api.post('/connect/sessions', { tags: { end_user_id: 'u1' } }, { token: secretKey });
        assert.equal(created.status, 201);
        assert.ok(created.body.data.connect_link.startsWith(`${url}/connect-ui/?session_token=nango_connect_session_`));
        const page = await api.get('/connect-ui/');
        assert.equal(page.status, 200);
        assert.match(page.headers.get('content-type'), /^text\/html/);
        assert.match(page.text, /\/api-auth\/api-key\//);

        // The SDK-shaped authorization; its webhook is signed with the key from the environment.
        const token = created.body.data.token;
        const res = await api.post(`/api-auth/api-key/exa?connect_session_token=${token}`, { apiKey: 'k' });
        assert.equal(res.status, 200);
        const [request] = await sink.waitFor(1);
        assert.equal(request.headers['x-nango-hmac-sha256'], createHmac('sha256', 'from-env').update(request.body).digest('hex'));

        const exit = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
        child.kill('SIGTERM');
        assert.deepEqual(await exit, { code: 0, signal: null });
    } finally {
        if (child.exitCode === null) child.kill('SIGKILL');
        await sink.close();
        rmSync(dir, { recursive: true, force: true });
    }
});

test('in-process start: two emulators on ephemeral ports do not share state', async () => {
    const { startEmulator } = await import('../src/server.js');
    const a = await startEmulator({ port: 0, config: testConfig() });
    const b = await startEmulator({ port: 0, config: testConfig() });
    try {
        assert.notEqual(a.url, b.url);
        assert.match(a.url, /^http:\/\/127\.0\.0\.1:\d+$/);
        const { res } = await authorize(client(a.url));
        assert.equal(res.status, 200);
        const listed = await client(b.url).get('/connections?limit=10', { token: testConfig().secretKey });
        assert.deepEqual(listed.body.connections, []);
    } finally {
        await a.close();
        await b.close();
    }
});
