// End to end: a signed webhook is a hint, Nango's API is the truth (issue 16,
// shared/docs/nango-api.md §6). Nango forwards a provider body it matches to no connection
// unwrapped and signed with our key, so whoever knows a provider webhook URL can have Nango sign
// anything that looks like an auth webhook. The emulator plays that with
// POST /_emulator/webhooks/forward; each test proves such a body changes nothing it must not.
// Needs the emulator's controls; skipped against a real Nango (NANGO_EMULATOR=0).
//
//   STACK_URL          the gateway (http://127.0.0.1:3000)
//   NANGO_HOST         the emulator (http://127.0.0.1:3003)
//   DYNAMODB_URL       the stack's DynamoDB Local (http://127.0.0.1:8000), read directly
//   CONNECTIONS_TABLE  nango-connections
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isOrphan, scanTable, storedItem } from './dynamodb.js';
import { call, control, emulated, stack, until } from './http.js';

const skip = !emulated && 'needs the Nango emulator';
const run = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;

/** A user of the app: their claims and a dev token. */
async function user(name) {
  const claims = { sub: `e2e-trust-${name}-${run}`, org_id: `e2e-trust-org-${name}-${run}` };
  const answer = await call(`${stack}/dev/token`, { method: 'POST', body: claims });
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  return { ...claims, token: answer.body.token, tags: { end_user_id: claims.sub, organization_id: claims.org_id } };
}

async function listOf(who) {
  const answer = await call(`${stack}/connections?limit=100`, { token: who.token });
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  return answer.body.connections;
}

const listedFor = async (who, connectionId) => (await listOf(who)).find((c) => c.connectionId === connectionId);

/** A connection in Nango with the owner's tags and its real creation webhook, once the owner lists it. */
async function ownedConnection(owner, integration = 'github') {
  const connectionId = `e2e-trust-${integration}-${Math.random().toString(36).slice(2, 10)}-${run}`;
  await control('POST', '/_emulator/connections', { integration, connectionId, tags: owner.tags, webhook: true });
  await until(`${connectionId} listed for its owner`, () => listedFor(owner, connectionId));
  return connectionId;
}

/** An auth webhook body as Nango builds it; what a forger would copy. */
function authBody(operation, connectionId, { tags, integration = 'github', success = true } = {}) {
  return {
    from: 'nango',
    type: 'auth',
    connectionId,
    providerConfigKey: integration,
    authMode: 'API_KEY',
    provider: integration,
    environment: 'dev',
    operation,
    success,
    ...(tags ? { tags } : {}),
  };
}

/** Has Nango forward `body` as an unmatched provider webhook; resolves once the receiver answered. */
async function forward(body) {
  const outcome = await control('POST', '/_emulator/webhooks/forward', body);
  const [delivery] = outcome.deliveries;
  assert.equal(delivery.status, 'delivered', `the receiver's answers: ${JSON.stringify(delivery.attempts)}`);
  assert.deepEqual(delivery.attempts.map((a) => a.status), [200], 'a signed delivery is acknowledged with 200 at once');
  return outcome;
}

test('a signed forged deletion of a live connection: 200, and it stays listed and active for its owner', { skip }, async () => {
  const owner = await user('deletion-owner');
  const connectionId = await ownedConnection(owner);

  await forward(authBody('deletion', connectionId, { tags: owner.tags }));

  const after = await listedFor(owner, connectionId);
  assert.ok(after, 'still listed for its owner after a forged deletion');
  assert.equal(after.status, 'active');
  const item = await storedItem(connectionId);
  assert.equal(item.status.S, 'active');
  assert.equal(item.deletedAt, undefined, 'no tombstone');
});

test('a signed forged creation naming user B, for user A’s connection whose real creation webhook was dropped: A lists it, B never does', { skip }, async () => {
  const a = await user('creation-a');
  const b = await user('creation-b');
  const connectionId = `e2e-trust-dropped-${run}`;
  // Nango has the connection with A's tags (A completed Connect), but its webhook is lost.
  await control('POST', '/_emulator/webhooks/drop', { count: 1, connectionId, operation: 'creation' });
  await control('POST', '/_emulator/connections', { integration: 'github', connectionId, tags: a.tags, webhook: true });
  await until('the real creation webhook is dropped', async () => {
    const { webhooks } = await control('GET', `/_emulator/webhooks?connectionId=${connectionId}`);
    return webhooks.length > 0 && webhooks.every((d) => d.status === 'dropped');
  });

  await forward(authBody('creation', connectionId, { tags: b.tags }));

  assert.equal(await listedFor(b, connectionId), undefined, 'the forger, named in the body, does not list it');
  const found = await until('A lists it (the owner comes from the tags of Nango’s row)', () => listedFor(a, connectionId), 5_000);
  assert.equal(found.status, 'active');
  const item = await storedItem(connectionId);
  assert.equal(item.endUserId?.S, a.sub);
  assert.equal(item.organizationId?.S, a.org_id);
  assert.equal(await listedFor(b, connectionId), undefined, 'B never lists it');
});

test('a signed forged creation for an id Nango does not have: listed for nobody', { skip }, async () => {
  const forger = await user('ghost-forger');
  const orgMate = await user('ghost-org-mate');
  const connectionId = `e2e-trust-ghost-${run}`;
  assert.equal((await control('GET', `/_emulator/connections?connectionId=${connectionId}`)).connections.length, 0);

  await forward(authBody('creation', connectionId, { tags: forger.tags }));

  assert.equal(await listedFor(forger, connectionId), undefined, 'the owner the body names does not list it');
  // Someone else of the organization the body names: the organization index must not list it either.
  const sameOrg = await call(`${stack}/dev/token`, { method: 'POST', body: { sub: orgMate.sub, org_id: forger.org_id } });
  assert.equal(await listedFor({ token: sameOrg.body.token }, connectionId), undefined, 'nobody of the named organization lists it');
  const item = await storedItem(connectionId);
  assert.ok(item === null || isOrphan(item), `stored, if at all, as an orphan with no owner and no tags: ${JSON.stringify(item)}`);
});

test('a JSON array forwarded: 200, nothing written', { skip }, async () => {
  const owner = await user('array-owner');
  const connectionId = await ownedConnection(owner);
  const before = await scanTable();

  const outcome = await forward([authBody('deletion', connectionId, { tags: owner.tags }), { type: 'auth' }]);

  // The same signed bytes again, straight to the receiver, so that its answer is checked against
  // openapi.yaml (http.js does that for every answer of the stack).
  const signature = (await control('GET', '/_emulator/webhooks')).webhooks.find((d) => d.id === outcome.deliveries[0].id).headers['X-Nango-Hmac-Sha256'];
  const direct = await call(`${stack}/webhooks/nango`, { method: 'POST', body: outcome.body, headers: { 'x-nango-hmac-sha256': signature } });
  assert.equal(direct.status, 200, JSON.stringify(direct.body));

  assert.deepEqual(await scanTable(), before, 'the table is unchanged');
  assert.equal((await listedFor(owner, connectionId))?.status, 'active');
});

test('an integration removed in Nango (its connections deleted without a webhook): after the reconcile command, they are no longer listed', { skip }, async () => {
  const owner = await user('removed-owner');
  const removed = [await ownedConnection(owner, 'linear'), await ownedConnection(owner, 'linear')];
  const kept = await ownedConnection(owner, 'github');

  const removal = await control('DELETE', '/_emulator/integrations/linear');
  try {
    assert.ok(removed.every((id) => removal.connections.some((c) => c.connection_id === id)));
    // No webhook told the stack: it still lists them.
    assert.ok(await listedFor(owner, removed[0]), 'listed until reconciliation');

    // Nango's listing no longer has them and the exact lookup finds nothing; a run may spread its
    // confirmations over its budget, so allow a few runs.
    await control('DELETE', '/_emulator/requests');
    const summaries = [];
    for (let i = 0; i < 3; i++) {
      const answer = await call(`${stack}/dev/reconcile`, { method: 'POST' });
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      summaries.push(answer.body);
      const ids = (await listOf(owner)).map((c) => c.connectionId);
      if (!removed.some((id) => ids.includes(id))) break;
    }
    const ids = (await listOf(owner)).map((c) => c.connectionId);
    assert.deepEqual(removed.filter((id) => ids.includes(id)), [], `still listed after ${summaries.length} runs: ${JSON.stringify(summaries)}`);
    assert.ok(ids.includes(kept), 'a connection of another integration stays');
    // Absences are confirmed with the exact listing lookup, never GET /connections/{id} (which
    // reads, and may refresh, credentials; for a removed integration it answers 400, never 404).
    const { routes, connectionLookups } = await control('GET', '/_emulator/requests');
    assert.equal(routes['GET /connections/:connectionId'], undefined, `Nango calls of the runs: ${JSON.stringify(routes)}`);
    assert.ok(connectionLookups.requests >= removed.length, `exact lookups: ${JSON.stringify(connectionLookups)}`);
  } finally {
    // Created again (empty) so that later suites against this stack find the configuration they expect.
    await control('POST', '/_emulator/integrations', { id: 'linear' });
  }
});
