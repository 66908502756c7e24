// End to end: what confirming webhooks with Nango costs in Nango API calls (issue 16). Every
// creation and every deletion webhook costs one exact lookup (`GET /connections?connectionId=`),
// status changes (refresh, override) cost none, and `GET /connections/{id}` is never called. The
// emulator's listing never lags, so no lag retry is spent here; against Nango Cloud a lookup that
// meets the replica's lag costs one or two more.
// Needs the emulator's controls; skipped against a real Nango (NANGO_EMULATOR=0).
//
//   STACK_URL   the gateway (http://127.0.0.1:3000)
//   NANGO_HOST  the emulator (http://127.0.0.1:3003)
//   CONFIRMATION_COST_CONNECTIONS  connections in the run (default 40: 120 webhooks); docs/api.md's
//               figure is from 334 (1,002 webhooks)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { call, control, emulated, stack, until } from './http.js';

const connections = Number(process.env.CONFIRMATION_COST_CONNECTIONS ?? 40);
const run = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;

/** Every connection the owner lists, all pages. */
async function listed(owner) {
  const all = [];
  let cursor;
  do {
    const query = cursor ? `limit=100&cursor=${encodeURIComponent(cursor)}` : 'limit=100';
    const answer = await call(`${stack}/connections?${query}`, { token: owner.token });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    all.push(...answer.body.connections);
    cursor = answer.body.nextCursor;
  } while (cursor);
  return all;
}

test('each creation and deletion webhook costs one exact lookup, status changes none', { skip: !emulated && 'needs the Nango emulator' }, async (t) => {
  const claims = { sub: `e2e-cost-${run}`, org_id: `e2e-cost-org-${run}` };
  const token = (await call(`${stack}/dev/token`, { method: 'POST', body: claims })).body.token;
  const owner = { token, tags: { end_user_id: claims.sub, organization_id: claims.org_id } };
  await control('DELETE', '/_emulator/requests');
  // The 40 webhooks below go out at once. The local gateway runs at most SANDBOXES_PER_FUNCTION
  // receivers (4 in the tests), and a throttled webhook is a 429 that Nango never retries: held
  // to that many in flight, every one is delivered, which is what this test counts.
  const sandboxes = Number(process.env.SANDBOXES_PER_FUNCTION || 4);
  await control('POST', '/_emulator/webhooks/delivery', { concurrency: sandboxes });
  t.after(() => control('POST', '/_emulator/webhooks/delivery', { concurrency: 0 }));

  const created = await control('POST', '/_emulator/connections', {
    connections: [{ integration: 'github', tags: owner.tags, webhook: true, count: connections }],
  });
  const ids = created.connections.map((c) => c.connection_id);
  await until(`${connections} connections listed`, async () => (await listed(owner)).length === connections, 60_000);
  for (const id of ids) await control('POST', `/_emulator/connections/${id}/refresh-failure`);
  await until('every connection failing', async () => (await listed(owner)).every((c) => c.status === 'error'), 60_000);
  for (const id of ids) await control('DELETE', `/_emulator/connections/${id}?webhook=true`);
  await until('no connection listed', async () => (await listed(owner)).length === 0, 60_000);

  const counts = await control('GET', '/_emulator/requests');
  const webhooks = 3 * connections;
  const lookups = counts.connectionLookups.requests;
  assert.equal(lookups, 2 * connections, `one lookup per creation and deletion: ${JSON.stringify(counts)}`);
  assert.equal(counts.routes['GET /connections/:connectionId'], undefined, 'GET /connections/{id} is never called');
  console.log(
    `confirmation cost: ${webhooks} webhooks (${connections} creations, ${connections} refresh failures, ` +
      `${connections} deletions) → ${lookups} Nango lookups: ${Math.round((1000 * lookups) / webhooks)} per 1,000 webhooks of this mix; ` +
      `1 per creation or deletion, 0 per status change`,
  );
});
