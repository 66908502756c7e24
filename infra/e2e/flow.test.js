// End to end, over HTTP only, against a running stack (scripts/dev): the whole authorization
// flow, from a token to a reconnected connection; deleting a connection; paging the list. Runs
// against the Nango emulator, or against a real Nango server when NANGO_EMULATOR=0 (then what only
// the emulator can cause or show, a refresh failure and its truth listing, is skipped).
//
//   STACK_URL         the gateway (http://127.0.0.1:3000)
//   NANGO_HOST        Nango or the emulator (http://127.0.0.1:3003)
//   NANGO_SECRET_KEY  to read the connection back from Nango
//   NANGO_EMULATOR    1 (default) or 0
//   E2E_INTEGRATION   an API-key integration (github)
//   E2E_API_KEY       a key Nango accepts for it (any key, with the emulator)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { call, stack } from './http.js';

const nangoHost = process.env.NANGO_HOST ?? 'http://127.0.0.1:3003';
const secretKey = process.env.NANGO_SECRET_KEY;
const emulator = (process.env.NANGO_EMULATOR ?? '1') === '1';
const integration = process.env.E2E_INTEGRATION ?? 'github';
const apiKey = process.env.E2E_API_KEY ?? 'e2e-test-key';

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

function freshRun() {
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

async function devToken(identity) {
  const answer = await call(`${stack}/dev/token`, { method: 'POST', body: identity });
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  return answer.body.token;
}

/** A new connection of the token's caller, through a session and the SDK's API-key call, once listed. */
async function connectAndWait(token) {
  const session = await call(`${stack}/sessions`, { method: 'POST', token, body: { allowedIntegrations: [integration] } });
  assert.equal(session.status, 201, JSON.stringify(session.body));
  const connectionId = await authorize(session.body.sessionToken);
  return waitForConnection(token, connectionId, (c) => c.status === 'active', 'active');
}

/** Whether Nango still has the connection: the emulator's truth listing, or Nango's own GET. */
async function nangoStillHas(connectionId) {
  if (emulator) {
    const truth = await call(`${nangoHost}/_emulator/connections?connectionId=${connectionId}`);
    assert.equal(truth.status, 200);
    assert.equal(truth.body.connections.length, 1, `the emulator knows ${connectionId}`);
    return !truth.body.connections[0].deleted;
  }
  const answer = await call(`${nangoHost}/connections/${connectionId}?provider_config_key=${integration}`, { token: secretKey });
  assert.ok([200, 404].includes(answer.status), JSON.stringify(answer.body));
  return answer.status === 200;
}

async function listed(token, connectionId) {
  const answer = await call(`${stack}/connections`, { token });
  assert.equal(answer.status, 200);
  return answer.body.connections.some((c) => c.connectionId === connectionId);
}

async function nangoConnection(connectionId) {
  const answer = await call(`${nangoHost}/connections/${connectionId}?provider_config_key=${integration}`, {
    token: secretKey,
  });
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  return answer.body;
}

test('authorize, fail, reconnect: owner and tags survive', async () => {
  const run = freshRun();
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

test('delete: a stranger cannot, the owner can, and a second delete is 404', { skip: !emulator && !secretKey && 'needs NANGO_SECRET_KEY to read Nango' }, async () => {
  const run = freshRun();
  const owner = await devToken({ sub: `e2e-owner-${run}`, org_id: `e2e-org-${run}` });
  const stranger = await devToken({ sub: `e2e-stranger-${run}`, org_id: `e2e-other-org-${run}` });
  const { connectionId } = await connectAndWait(owner);
  const path = `${stack}/connections/${connectionId}`;

  // Not theirs: the same answer as a connection that does not exist, and Nango is not asked.
  const stolen = await call(path, { method: 'DELETE', token: stranger });
  assert.equal(stolen.status, 404, JSON.stringify(stolen.body));
  assert.equal(stolen.body.error.code, 'connection_not_found');
  assert.equal(await nangoStillHas(connectionId), true, 'a stranger deletes nothing in Nango');
  assert.equal(await listed(owner, connectionId), true, 'a stranger deletes nothing here');

  const deleted = await call(path, { method: 'DELETE', token: owner });
  assert.equal(deleted.status, 204, JSON.stringify(deleted.body));
  assert.equal(deleted.body, null, '204 has no body');
  // Gone at once (the function marks it deleted itself, not only the deletion webhook) ...
  assert.equal(await listed(owner, connectionId), false);
  assert.equal(await nangoStillHas(connectionId), false);
  // ... and stays gone once Nango's deletion webhook has had time to land.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  assert.equal(await listed(owner, connectionId), false);

  const again = await call(path, { method: 'DELETE', token: owner });
  assert.equal(again.status, 404, JSON.stringify(again.body));
  assert.equal(again.body.error.code, 'connection_not_found');
  const unknown = await call(`${stack}/connections/no-such-connection-${run}`, { method: 'DELETE', token: owner });
  assert.equal(unknown.status, 404, JSON.stringify(unknown.body));
  assert.equal((await call(path, { method: 'DELETE' })).status, 401, 'DELETE needs a token');
});

test('pages: limit=2 following nextCursor lists own and organization connections once each', async () => {
  const run = freshRun();
  const org = `e2e-org-${run}`;
  const user = await devToken({ sub: `e2e-pager-${run}`, org_id: org });
  const colleague = await devToken({ sub: `e2e-pager-colleague-${run}`, org_id: org });
  const stranger = await devToken({ sub: `e2e-pager-stranger-${run}` });
  // Three of the user's own and two of a colleague's: both index streams have more than a page.
  const expected = [];
  for (const token of [user, colleague, user, colleague, user]) expected.push((await connectAndWait(token)).connectionId);
  for (const id of expected) assert.equal(await listed(user, id), true, `${id} is listed for the user`);

  const pages = [];
  let cursor = null;
  do {
    const query = cursor ? `limit=2&cursor=${encodeURIComponent(cursor)}` : 'limit=2';
    const answer = await call(`${stack}/connections?${query}`, { token: user });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    pages.push(answer.body.connections);
    cursor = answer.body.nextCursor ?? null;
    assert.ok(pages.length <= 3, 'five connections take three pages of two');
    if (pages.length === 1) {
      // A cursor is bound to its caller, and a malformed one is refused.
      const borrowed = await call(`${stack}/connections?limit=2&cursor=${encodeURIComponent(cursor)}`, { token: stranger });
      assert.equal(borrowed.status, 400, JSON.stringify(borrowed.body));
      assert.equal(borrowed.body.error.code, 'invalid_cursor');
      const malformed = await call(`${stack}/connections?limit=2&cursor=${encodeURIComponent(`${cursor.slice(0, -4)}!`)}`, { token: user });
      assert.equal(malformed.status, 400, JSON.stringify(malformed.body));
      assert.equal(malformed.body.error.code, 'invalid_cursor');
    }
  } while (cursor);

  assert.deepEqual(pages.map((p) => p.length), [2, 2, 1]);
  const ids = pages.flat().map((c) => c.connectionId);
  assert.equal(new Set(ids).size, ids.length, 'no connection on two pages');
  assert.deepEqual([...ids].sort(), [...expected].sort(), 'every connection on some page');
  // Newest first across the pages, whichever stream each came from.
  assert.deepEqual(ids, [...expected].reverse());
  const created = pages.flat().map((c) => c.createdAt);
  assert.deepEqual(created, [...created].sort().reverse());

  const tooMany = await call(`${stack}/connections?limit=101`, { token: user });
  assert.equal(tooMany.status, 400, JSON.stringify(tooMany.body));
  assert.equal(tooMany.body.error.code, 'invalid_limit');
});
