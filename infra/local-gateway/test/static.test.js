// The gateway's static files: a folder served under a prefix, and a single file at one path
// (how /openapi.yaml is served from the repository's root without exposing anything beside it).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createGateway, staticFile, staticRoot } from '../src/gateway.js';

let server, base;

before(async () => {
  const root = mkdtempSync(join(tmpdir(), 'gateway-files-'));
  mkdirSync(join(root, 'reference'));
  writeFileSync(join(root, 'reference', 'index.html'), '<h1>reference</h1>');
  writeFileSync(join(root, 'openapi.yaml'), 'openapi: 3.1.0\n');
  writeFileSync(join(root, 'secret.txt'), 'not served');
  server = createGateway({
    functions: {},
    allowedOrigins: [],
    staticRoots: [staticFile('/openapi.yaml', root, 'openapi.yaml'), staticRoot('/api-reference/', root, 'reference')],
    demoConfig: {},
    log: () => {},
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${server.address().port}`;
});
after(() => server.close());

test('a single file is served at its path, as YAML', async () => {
  const response = await fetch(`${base}/openapi.yaml`);
  assert.equal(response.status, 200);
  assert.equal(response.headers.get('content-type'), 'application/yaml');
  assert.equal(await response.text(), 'openapi: 3.1.0\n');
});

test('nothing beside the single file is served', async () => {
  for (const path of ['/secret.txt', '/openapi.yaml/secret.txt', '/openapi.yaml/../secret.txt', '/api-reference/..%2fsecret.txt']) {
    assert.equal((await fetch(`${base}${path}`)).status, 404, path);
  }
});

test('a folder is served under its prefix, index.html by default', async () => {
  assert.equal(await (await fetch(`${base}/api-reference/`)).text(), '<h1>reference</h1>');
});
