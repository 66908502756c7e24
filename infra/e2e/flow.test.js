// End to end, over HTTP only, against a running stack (scripts/dev): the whole authorization
// flow, from a token to a reconnected connection. Runs against the Nango emulator, or against a
// real Nango server when NANGO_EMULATOR=0 (then the refresh failure, which only the emulator can
// cause, is skipped).
//
//   STACK_URL         the gateway (http://127.0.0.1:3000)
//   NANGO_HOST        Nango or the emulator (http://127.0.0.1:3003)
//   NANGO_SECRET_KEY  to read the connection back from Nango
//   NANGO_EMULATOR    1 (default) or 0
//   E2E_INTEGRATION   an API-key integration (github)
//   E2E_API_KEY       a key Nango accepts for it (any key, with the emulator)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkStackAnswer } from './contract.js';

const stack = process.env.STACK_URL ?? 'http://127.0.0.1:3000';
const nangoHost = process.env.NANGO_HOST ?? 'http://127.0.0.1:3003';
const secretKey = process.env.NANGO_SECRET_KEY;
const emulator = (process.env.NANGO_EMULATOR ?? '1') === '1';
const integration = process.env.E2E_INTEGRATION ?? 'github';
const apiKey = process.env.E2E_API_KEY ?? 'e2e-test-key';

async function call(url, { method = 'GET', token, body } = {}) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  const answer = { status: response.status, body: text ? JSON.parse(text) : null };
  checkStackAnswer(stack, method, url, response, answer.body);
  return answer;
}

// What the frontend SDK sends for nango.auth(integration, { credentials: { apiKey } }).
async function authorize(sessionToken) {
  const url = `${nangoHost}/api-auth/api-key/${integration}?connect_session_token=${sessionToken}`;
  const answer = await call(url, { method: 'POST', body: { apiKey } });
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  return answer.body.connectionId;
}

// Webhooks arrive asynchronously: poll our API until the connection looks as expected.
async function waitForConnection(token, connectionId, predicate, what) {
  const deadline = Date.now() + 15_000;
  let last;
  while (Date.now() < deadline) {
    const answer = await call(`${stack}/connections`, { token });
    assert.equal(answer.status, 200);
    last = answer.body.connections.find((c) => c.connectionId === connectionId);
    if (last && predicate(last)) return last;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  assert.fail(`connection ${connectionId} never became ${what}; last seen: ${JSON.stringify(last)}`);
}

async function nangoConnection(connectionId) {
  const answer = await call(`${nangoHost}/connections/${connectionId}?provider_config_key=${integration}`, {
    token: secretKey,
  });
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  return answer.body;
}

test('authorize, fail, reconnect: owner and tags survive', async () => {
  const run = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  const user = { sub: `e2e-user-${run}`, email: `e2e-${run}@example.com`, name: 'E2E User', org_id: `e2e-org-${run}` };
  const expectedTags = {
    end_user_id: user.sub,
    end_user_email: user.email,
    end_user_display_name: user.name,
    organization_id: user.org_id,
  };

  const { body: minted } = await call(`${stack}/dev/token`, { method: 'POST', body: user });
  const token = minted.token;
  // An RS256 token from the stack's OIDC issuer, which the gateway finds through discovery.
  const header = JSON.parse(Buffer.from(token.split('.')[0], 'base64url'));
  assert.equal(header.alg, 'RS256');
  const issuer = JSON.parse(Buffer.from(token.split('.')[1], 'base64url')).iss;
  const discovery = await call(`${issuer}/.well-known/openid-configuration`);
  assert.equal(discovery.status, 200);
  assert.ok((await call(discovery.body.jwks_uri)).body.keys.some((key) => key.kid === header.kid));
  assert.equal((await call(`${stack}/connections`)).status, 401, 'the API needs a token');

  const session = await call(`${stack}/sessions`, { method: 'POST', token, body: { allowedIntegrations: [integration] } });
  assert.equal(session.status, 201, JSON.stringify(session.body));
  assert.match(session.body.sessionToken, /^nango_connect_session_/);

  const connectionId = await authorize(session.body.sessionToken);
  const active = await waitForConnection(token, connectionId, (c) => c.status === 'active', 'active');
  assert.equal(active.integrationId, integration);
  assert.equal(active.error, null);

  // A colleague in the same organization sees it; a stranger does not.
  const colleague = (await call(`${stack}/dev/token`, { method: 'POST', body: { sub: `e2e-colleague-${run}`, org_id: user.org_id } })).body.token;
  const stranger = (await call(`${stack}/dev/token`, { method: 'POST', body: { sub: `e2e-stranger-${run}` } })).body.token;
  assert.ok((await call(`${stack}/connections`, { token: colleague })).body.connections.some((c) => c.connectionId === connectionId));
  assert.ok(!(await call(`${stack}/connections`, { token: stranger })).body.connections.some((c) => c.connectionId === connectionId));
  const stolen = await call(`${stack}/sessions/reconnect`, { method: 'POST', token: stranger, body: { connectionId } });
  assert.equal(stolen.status, 404);

  if (emulator) {
    const failure = await call(`${nangoHost}/_emulator/connections/${connectionId}/refresh-failure`, { method: 'POST' });
    assert.ok(failure.status < 300, JSON.stringify(failure.body));
    const failed = await waitForConnection(token, connectionId, (c) => c.status === 'error', 'error');
    assert.deepEqual(failed.error, { type: 'refresh_token_external_error', description: 'invalid_grant' });
  }

  const reconnect = await call(`${stack}/sessions/reconnect`, { method: 'POST', token, body: { connectionId } });
  assert.equal(reconnect.status, 201, JSON.stringify(reconnect.body));
  assert.equal(await authorize(reconnect.body.sessionToken), connectionId);
  const healed = await waitForConnection(
    token,
    connectionId,
    (c) => c.status === 'active' && c.updatedAt > active.updatedAt,
    'active again',
  );
  assert.equal(healed.createdAt, active.createdAt);

  // Our store still knows the owner (the connection is still listed for them and their org) ...
  assert.ok((await call(`${stack}/connections`, { token: colleague })).body.connections.some((c) => c.connectionId === connectionId));
  // ... and Nango kept the tags, because the reconnect session carried them.
  if (secretKey) {
    const inNango = await nangoConnection(connectionId);
    for (const [key, value] of Object.entries(expectedTags)) assert.equal(inNango.tags[key], value, key);
  }
});
