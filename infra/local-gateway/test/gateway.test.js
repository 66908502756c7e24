import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAuthorizer } from '../src/authorizer.js';
import { createGateway, matchPath, staticRoot } from '../src/gateway.js';
import { createLocalIssuer, generateSigningKey } from '../src/issuer.js';
import { MetricsCollector } from '../src/metrics.js';
import { ThrottledError } from '../src/runtime-api.js';
import { freePort, keyPair, sign, startIssuer } from '../testkit/oidc.js';

const calls = [];
// A function whose sandboxes are all busy when `throttled` is set (runtime-api.js's ThrottledError).
const fake = (name) => {
  const fn = {
    throttled: false,
    invoke: async (event) => {
      if (fn.throttled) throw new ThrottledError(name, 4);
      calls.push({ name, event });
      return { statusCode: 201, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ from: name }) };
    },
    invokeWhenFree: (event) => fn.invoke(event),
  };
  return fn;
};
const metrics = new MetricsCollector();
const functions = Object.fromEntries(
  ['create-session', 'reconnect-session', 'list-connections', 'delete-connection', 'webhook-receiver', 'reconcile-connections'].map((n) => [n, fake(n)]),
);
let server, base, issuer, logged;

// As main.js starts it: the gateway serves its own issuer, and its authorizer finds that issuer
// through discovery over HTTP, as it would find Cognito.
async function startGateway({ authorizer, localIssuer, port = 0 }) {
  const publicDir = mkdtempSync(join(tmpdir(), 'gateway-static-'));
  writeFileSync(join(publicDir, 'index.html'), '<h1>demo</h1>');
  const gateway = createGateway({
    functions,
    authorizer,
    localIssuer,
    allowedOrigins: ['http://127.0.0.1:3000'],
    staticRoots: [staticRoot('/', publicDir)],
    demoConfig: { emulator: true },
    metrics,
    log: (line) => logged.push(line),
  });
  await new Promise((resolve) => gateway.listen(port, '127.0.0.1', resolve));
  return { gateway, base: `http://127.0.0.1:${gateway.address().port}` };
}

before(async () => {
  logged = [];
  const port = await freePort();
  issuer = createLocalIssuer({
    url: `http://127.0.0.1:${port}/oidc`,
    audience: 'nango-connect-local',
    signingKey: await generateSigningKey(),
  });
  const authorizer = createAuthorizer({ issuer: issuer.url, audiences: [issuer.audience], log: (line) => logged.push(line) });
  ({ gateway: server, base } = await startGateway({ authorizer, localIssuer: issuer, port }));
});
after(() => server.close());

const token = (claims = { sub: 'user-1', org_id: 'org-1' }) => issuer.mint(claims);

test('a route without a valid token is 401 {"message":"Unauthorized"} and the function is never called', async () => {
  calls.length = 0;
  const foreign = await keyPair('RS256');
  const now = Math.floor(Date.now() / 1000);
  const forged = await sign(foreign, { sub: 'u', iss: issuer.url, aud: issuer.audience, exp: now + 60 });
  const cases = [
    [undefined, /^Bearer$/],
    ['Bearer nope', /error="invalid_token" error_description="the token is not a JWT"/],
    [`Bearer ${forged}`, /error_description="no key in the issuer's JWKS matches the token's kid"/],
  ];
  for (const [authorization, challenge] of cases) {
    const headers = authorization ? { authorization } : {};
    const response = await fetch(`${base}/connections`, { headers });
    assert.equal(response.status, 401);
    assert.deepEqual(await response.json(), { message: 'Unauthorized' });
    assert.match(response.headers.get('www-authenticate'), challenge);
  }
  assert.equal(calls.length, 0);
  assert.match(logged.join('\n'), /401 GET \/connections: no key in the issuer's JWKS/);
  assert.ok(!logged.join('\n').includes(forged), 'tokens never reach the log');
});

test('a refusal names nothing the caller wrote that could break the header or the log', async () => {
  const part = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const evil = `${part({ alg: 'x"\r\nset-cookie: a=b', kid: 'k' })}.${part({ sub: 'u' })}.c2ln`;
  const response = await fetch(`${base}/connections`, { headers: { authorization: `Bearer ${evil}` } });
  assert.equal(response.status, 401);
  assert.equal(response.headers.get('set-cookie'), null);
  assert.match(response.headers.get('www-authenticate'), /error_description="the signing method is invalid"$/);
});

test('the token may come alone, without "Bearer", as API Gateway reads the identity source', async () => {
  const response = await fetch(`${base}/connections`, { headers: { authorization: await token() } });
  assert.equal(response.status, 201);
});

test('the local issuer publishes its discovery document and its public key', async () => {
  const discovery = await (await fetch(`${issuer.url}/.well-known/openid-configuration`)).json();
  assert.equal(discovery.issuer, issuer.url);
  assert.equal(discovery.jwks_uri, `${issuer.url}/jwks.json`);
  const response = await fetch(discovery.jwks_uri);
  assert.equal(response.headers.get('content-type'), 'application/jwk-set+json');
  const { keys } = await response.json();
  assert.equal(keys.length, 1);
  assert.equal(keys[0].kty, 'RSA');
  assert.equal(keys[0].alg, 'RS256');
  for (const secret of ['d', 'p', 'q', 'dp', 'dq', 'qi']) assert.equal(keys[0][secret], undefined, `private member ${secret}`);
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
      headers: { authorization: `Bearer ${await token()}`, 'content-type': 'application/json', 'x-end-user-id': 'forged' },
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
    const response = await fetch(`${base}${path}`, { method, headers: { authorization: `Bearer ${await token()}` } });
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

test('dev tokens need a sub, are RS256 from the local issuer, and are accepted by the routes', async () => {
  const bad = await fetch(`${base}/dev/token`, { method: 'POST', body: '{"email":"a@example.com"}' });
  assert.equal(bad.status, 400);
  const body = JSON.stringify({ sub: 'u9', email: 'u9@example.com', name: 'U Nine', org_id: 'o9', admin: 'yes' });
  const { token: minted } = await (await fetch(`${base}/dev/token`, { method: 'POST', body })).json();
  const header = JSON.parse(Buffer.from(minted.split('.')[0], 'base64url'));
  assert.equal(header.alg, 'RS256');
  assert.equal(header.kid, issuer.jwks().keys[0].kid);
  calls.length = 0;
  const response = await fetch(`${base}/connections`, { headers: { authorization: `Bearer ${minted}` } });
  assert.equal(response.status, 201);
  const claims = calls.at(-1).event.requestContext.authorizer.jwt.claims;
  assert.equal(claims.sub, 'u9');
  assert.equal(claims.email, 'u9@example.com');
  assert.equal(claims.name, 'U Nine');
  assert.equal(claims.org_id, 'o9');
  assert.equal(claims.iss, issuer.url);
  assert.equal(claims.aud, 'nango-connect-local');
  assert.equal(claims.admin, undefined, 'only the known fields become claims');
});

test('pointed at a real issuer, the gateway accepts its tokens only, and serves no dev tokens', async () => {
  const provider = await startIssuer();
  const providerKey = await keyPair('RS256');
  provider.keys = [providerKey];
  const authorizer = createAuthorizer({ issuer: provider.url, audiences: ['web-app'], log: () => {} });
  const real = await startGateway({ authorizer, localIssuer: null });
  try {
    const response = await fetch(`${real.base}/dev/token`, { method: 'POST', body: '{"sub":"u1"}' });
    assert.equal(response.status, 404);
    const { error } = await response.json();
    assert.equal(error.code, 'dev_tokens_off');
    assert.ok(error.message.includes(`${provider.url} (JWT_ISSUER)`), error.message);
    assert.equal((await fetch(`${real.base}/oidc/.well-known/openid-configuration`)).status, 404);
    assert.equal((await fetch(`${real.base}/oidc/jwks.json`)).status, 404);
    const now = Math.floor(Date.now() / 1000);
    const idToken = await sign(providerKey, { sub: 'cognito-user', iss: provider.url, aud: 'web-app', iat: now, exp: now + 300 });
    calls.length = 0;
    const accepted = await fetch(`${real.base}/connections`, { headers: { authorization: `Bearer ${idToken}` } });
    assert.equal(accepted.status, 201);
    assert.equal(calls.at(-1).event.requestContext.authorizer.jwt.claims.sub, 'cognito-user');
    // The local issuer's tokens mean nothing to it.
    assert.equal((await fetch(`${real.base}/connections`, { headers: { authorization: `Bearer ${await token()}` } })).status, 401);
  } finally {
    real.gateway.close();
    await provider.close();
  }
});

test('static files are served, and nothing outside their folder', async () => {
  assert.equal(await (await fetch(`${base}/`)).text(), '<h1>demo</h1>');
  assert.equal((await fetch(`${base}/..%2f..%2fetc%2fpasswd`)).status, 404);
  assert.deepEqual(await (await fetch(`${base}/demo-config.json`)).json(), { emulator: true });
});

test('a path parameter is one whole, decoded segment, as API Gateway matches it', () => {
  const route = '/connections/{connectionId}';
  assert.deepEqual(matchPath(route, '/connections/a2968dec-61fa'), { connectionId: 'a2968dec-61fa' });
  assert.deepEqual(matchPath(route, '/connections/a%20b'), { connectionId: 'a b' });
  assert.equal(matchPath(route, '/connections/'), null);
  assert.equal(matchPath(route, '/connections/a/b'), null);
  assert.equal(matchPath(route, '/connections'), null);
  assert.equal(matchPath(route, '/connections/%E0%A4%A'), null, 'malformed escapes match nothing');
  assert.deepEqual(matchPath('/connections', '/connections'), {});
});

test('DELETE /connections/{id} reaches its function with the route key and path parameters', async () => {
  calls.length = 0;
  const response = await fetch(`${base}/connections/conn%2F1`, {
    method: 'DELETE',
    headers: { authorization: `Bearer ${await token()}` },
  });
  assert.equal(response.status, 201, 'the fake answers 201');
  assert.equal(calls.length, 1);
  const [{ name, event }] = calls;
  assert.equal(name, 'delete-connection');
  assert.equal(event.routeKey, 'DELETE /connections/{connectionId}');
  assert.deepEqual(event.pathParameters, { connectionId: 'conn/1' });
  assert.equal(event.requestContext.http.method, 'DELETE');
  const preflight = await fetch(`${base}/connections/conn-1`, {
    method: 'OPTIONS',
    headers: { origin: 'http://127.0.0.1:3000', 'access-control-request-method': 'DELETE' },
  });
  assert.match(preflight.headers.get('access-control-allow-methods'), /DELETE/);
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

test('a throttled API route is 500 {"message":"Internal Server Error"}, as API Gateway answers when Lambda rejects the invocation', async () => {
  functions['list-connections'].throttled = true;
  try {
    const response = await fetch(`${base}/connections`, { headers: { authorization: `Bearer ${await token()}`, origin: 'http://127.0.0.1:3000' } });
    assert.equal(response.status, 500);
    assert.deepEqual(await response.json(), { message: 'Internal Server Error' });
    assert.equal(response.headers.get('x-local-gateway-throttled'), 'list-connections');
    assert.equal(response.headers.get('access-control-allow-origin'), 'http://127.0.0.1:3000');
  } finally {
    functions['list-connections'].throttled = false;
  }
});

test("a throttled function URL is 429 with Lambda's TooManyRequestsException", async () => {
  functions['webhook-receiver'].throttled = true;
  try {
    const response = await fetch(`${base}/webhooks/nango`, { method: 'POST', body: '{}' });
    assert.equal(response.status, 429);
    assert.equal(response.headers.get('x-amzn-errortype'), 'TooManyRequestsException');
    assert.deepEqual(await response.json(), { Reason: 'ReservedFunctionConcurrentInvocationLimitExceeded', Type: 'User', message: 'Rate Exceeded.' });
  } finally {
    functions['webhook-receiver'].throttled = false;
  }
});

test('GET /dev/metrics shows the totals of the EMF lines recorded; DELETE resets them', async () => {
  metrics.reset();
  const line = (value) => JSON.stringify({
    _aws: { Timestamp: 1, CloudWatchMetrics: [{ Namespace: 'nango-connect', Dimensions: [['Function']], Metrics: [{ Name: 'NangoLatency', Unit: 'Milliseconds' }] }] },
    Function: 'create-session',
    NangoLatency: value,
  });
  metrics.record(line(120));
  metrics.record(line([30, 50]));
  const shown = await (await fetch(`${base}/dev/metrics`)).json();
  assert.equal(shown.lines, 2);
  assert.deepEqual(shown.metrics, [{
    namespace: 'nango-connect', metric: 'NangoLatency', unit: 'Milliseconds', dimensions: { Function: 'create-session' },
    samples: 3, sum: 200, min: 30, max: 120,
  }]);
  assert.equal((await fetch(`${base}/dev/metrics`, { method: 'DELETE' })).status, 204);
  assert.deepEqual((await (await fetch(`${base}/dev/metrics`)).json()).metrics, []);
});
