// The stack's answers that the authorization flow does not meet, checked against openapi.yaml
// (through `call`, like every answer of the end-to-end tests), and the API reference it serves.
//
//   STACK_URL   the gateway (http://127.0.0.1:3000)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkStackAnswer } from './contract.js';

const stack = process.env.STACK_URL ?? 'http://127.0.0.1:3000';

async function call(path, { method = 'GET', token, body, headers = {} } = {}) {
  if (token) headers.authorization = `Bearer ${token}`;
  const url = `${stack}${path}`;
  const response = await fetch(url, { method, headers: { 'content-type': 'application/json', ...headers }, body });
  const text = await response.text();
  const answer = { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : null };
  checkStackAnswer(stack, method, url, response, answer.body);
  return answer;
}

const token = async () =>
  (await call('/dev/token', { method: 'POST', body: JSON.stringify({ sub: `e2e-contract-${Date.now().toString(36)}` }) })).body.token;

test('the authorizer refuses a missing or forged token, as documented', async () => {
  for (const headers of [{}, { authorization: 'Bearer not-a-jwt' }]) {
    const answer = await call('/connections', { headers });
    assert.equal(answer.status, 401);
    assert.deepEqual(answer.body, { message: 'Unauthorized' });
  }
});

test('bad bodies and unknown connections get their documented codes', async () => {
  const jwt = await token();
  const cases = [
    ['/sessions', '{"allowedIntegrations":"github"}', 400, 'invalid_body'],
    ['/sessions/reconnect', '{}', 400, 'invalid_body'],
    ['/sessions/reconnect', '{"connectionId":"no-such-connection"}', 404, 'connection_not_found'],
    ['/sessions', JSON.stringify({ allowedIntegrations: ['x'.repeat(17 * 1024)] }), 413, 'payload_too_large'],
  ];
  for (const [path, body, status, code] of cases) {
    const answer = await call(path, { method: 'POST', token: jwt, body });
    assert.equal(answer.status, status, `${path} ${JSON.stringify(answer.body)}`);
    assert.equal(answer.body.error.code, code);
  }
});

test('the webhook receiver answers unsigned webhooks and other methods as documented', async () => {
  const unsigned = await call('/webhooks/nango', { method: 'POST', body: '{"type":"auth"}' });
  assert.equal(unsigned.status, 401);
  assert.equal(unsigned.body.error.code, 'invalid_signature');
  const get = await call('/webhooks/nango');
  assert.equal(get.status, 405);
  assert.equal(get.headers.get('allow'), 'POST');
});

test('the stack serves the API reference over the contract, without a CDN', async () => {
  const served = await fetch(`${stack}/openapi.yaml`);
  assert.equal(served.status, 200);
  assert.equal(await served.text(), readFileSync(join(import.meta.dirname, '..', '..', 'openapi.yaml'), 'utf8'));
  const page = await (await fetch(`${stack}/api-reference/`)).text();
  const assets = [...page.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]).filter((u) => !u.startsWith('data:'));
  assert.ok(assets.some((u) => u.endsWith('swagger-ui-bundle.js')), page);
  for (const asset of assets) {
    assert.ok(asset.startsWith('/'), `${asset} is not served by the stack`);
    assert.equal((await fetch(`${stack}${asset}`)).status, 200, asset);
  }
});
