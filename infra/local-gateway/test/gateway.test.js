import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createGateway, staticRoot } from '../src/gateway.js';
import { mint } from '../src/jwt.js';

const jwt = { secret: 'test-secret', issuer: 'http://127.0.0.1/dev', audience: 'nango-connect-local' };
const calls = [];
const fake = (name) => ({
  invoke: async (event) => {
    calls.push({ name, event });
    return { statusCode: 201, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ from: name }) };
  },
});
const functions = Object.fromEntries(
  ['create-session', 'reconnect-session', 'list-connections', 'webhook-receiver', 'reconcile-connections'].map((n) => [n, fake(n)]),
);
let server, base;

before(async () => {
  const publicDir = mkdtempSync(join(tmpdir(), 'gateway-static-'));
  writeFileSync(join(publicDir, 'index.html'), '<h1>demo</h1>');
  server = createGateway({
    functions,
    jwt,
    allowedOrigins: ['http://127.0.0.1:3000'],
    staticRoots: [staticRoot('/', publicDir)],
    demoConfig: { emulator: true },
    log: () => {},
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${server.address().port}`;
});
after(() => server.close());

const token = (claims = { sub: 'user-1', org_id: 'org-1' }) => mint(jwt.secret, claims, jwt);

test('a route without a valid token is 401 and the function is never called', async () => {
  calls.length = 0;
  for (const authorization of [undefined, 'Bearer nope', `Bearer ${mint('other-secret', { sub: 'u' }, jwt)}`]) {
    const headers = authorization ? { authorization } : {};
    const response = await fetch(`${base}/connections`, { headers });
    assert.equal(response.status, 401);
    assert.deepEqual(await response.json(), { message: 'Unauthorized' });
  }
  assert.equal(calls.length, 0);
});

test('each route reaches its function with the verified claims in a v2.0 event', async () => {
  calls.length = 0;
  const routes = [
    ['POST', '/sessions', 'create-session'],
    ['POST', '/sessions/reconnect', 'reconnect-session'],
    ['GET', '/connections', 'list-connections'],
  ];
  for (const [method, path, fn] of routes) {
    const body = method === 'POST' ? '{"connectionId":"c1"}' : undefined;
    const response = await fetch(`${base}${path}?x=1`, {
      method,
      body,
      headers: { authorization: `Bearer ${token()}`, 'content-type': 'application/json', 'x-end-user-id': 'forged' },
    });
    assert.equal(response.status, 201);
    assert.deepEqual(await response.json(), { from: fn });
    const { name, event } = calls.at(-1);
    assert.equal(name, fn);
    assert.equal(event.version, '2.0');
    assert.equal(event.routeKey, `${method} ${path}`);
    assert.equal(event.rawPath, path);
    assert.equal(event.rawQueryString, 'x=1');
    assert.equal(event.requestContext.http.method, method);
    assert.equal(event.requestContext.authorizer.jwt.claims.sub, 'user-1');
    assert.equal(event.requestContext.authorizer.jwt.claims.org_id, 'org-1');
    assert.equal(typeof event.requestContext.authorizer.jwt.claims.exp, 'string');
    if (body) assert.equal(event.body, body);
  }
});

test('unknown routes and methods are 404, as API Gateway answers them', async () => {
  for (const [method, path] of [['GET', '/sessions'], ['DELETE', '/connections'], ['POST', '/nope']]) {
    const response = await fetch(`${base}${path}`, { method, headers: { authorization: `Bearer ${token()}` } });
    assert.equal(response.status, 404, `${method} ${path}`);
  }
});

test('the webhook path gets a function URL event without an authorizer', async () => {
  calls.length = 0;
  const response = await fetch(`${base}/webhooks/nango`, {
    method: 'POST',
    body: '{"type":"auth"}',
    headers: { 'content-type': 'application/json', 'X-Nango-Hmac-Sha256': 'abc' },
  });
  assert.equal(response.status, 201);
  const { name, event } = calls.at(-1);
  assert.equal(name, 'webhook-receiver');
  assert.equal(event.routeKey, '$default');
  assert.equal(event.requestContext.authorizer, undefined);
  assert.equal(event.headers['x-nango-hmac-sha256'], 'abc');
  assert.equal(event.body, '{"type":"auth"}');
  assert.equal(event.isBase64Encoded, false);
});

test('CORS: preflights are answered for allowed origins only', async () => {
  const preflight = (origin) =>
    fetch(`${base}/sessions`, {
      method: 'OPTIONS',
      headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization' },
    });
  const allowed = await preflight('http://127.0.0.1:3000');
  assert.equal(allowed.status, 204);
  assert.equal(allowed.headers.get('access-control-allow-origin'), 'http://127.0.0.1:3000');
  assert.equal(allowed.headers.get('access-control-expose-headers'), 'retry-after', 'the app can read how long to wait');
  assert.match(allowed.headers.get('access-control-allow-headers'), /authorization/);
  const refused = await preflight('https://evil.example.com');
  assert.equal(refused.headers.get('access-control-allow-origin'), null);
});

test('dev tokens need a sub and are accepted by the routes', async () => {
  const bad = await fetch(`${base}/dev/token`, { method: 'POST', body: '{"email":"a@example.com"}' });
  assert.equal(bad.status, 400);
  const { token: minted } = await (await fetch(`${base}/dev/token`, { method: 'POST', body: '{"sub":"u9","org_id":"o9"}' })).json();
  calls.length = 0;
  const response = await fetch(`${base}/connections`, { headers: { authorization: `Bearer ${minted}` } });
  assert.equal(response.status, 201);
  assert.equal(calls.at(-1).event.requestContext.authorizer.jwt.claims.sub, 'u9');
});

test('static files are served, and nothing outside their folder', async () => {
  assert.equal(await (await fetch(`${base}/`)).text(), '<h1>demo</h1>');
  assert.equal((await fetch(`${base}/..%2f..%2fetc%2fpasswd`)).status, 404);
  assert.deepEqual(await (await fetch(`${base}/demo-config.json`)).json(), { emulator: true });
});

test('POST /dev/reconcile runs the reconciliation with a non-HTTP event and answers its result', async () => {
  calls.length = 0;
  const response = await fetch(`${base}/dev/reconcile`, { method: 'POST' });
  assert.equal(response.status, 200);
  assert.equal(calls.length, 1);
  assert.equal(calls[0].name, 'reconcile-connections');
  assert.equal(calls[0].event.requestContext, undefined, 'not an API Gateway event');
  assert.equal((await fetch(`${base}/dev/reconcile`)).status, 404, 'POST only');
});
