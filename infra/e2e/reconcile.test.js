// End to end, over HTTP only, against a running stack (scripts/dev) and its Nango emulator: a
// connection whose creation webhook is lost on purpose is invisible to its owner until the
// reconciliation runs (POST /dev/reconcile, what scripts/reconcile calls), and listed after.
// Needs the emulator's controls; skipped against a real Nango (NANGO_EMULATOR=0).
//
//   STACK_URL         the gateway (http://127.0.0.1:3000)
//   NANGO_HOST        the emulator (http://127.0.0.1:3003)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { call, control, emulated, stack, until } from './http.js';


async function listed(token, connectionId) {
  const answer = await call(`${stack}/connections`, { token });
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  return answer.body.connections.find((c) => c.connectionId === connectionId);
}

test('a lost creation webhook: not listed, then listed after the reconcile command', { skip: !emulated && 'needs the Nango emulator' }, async () => {
  const run = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  const user = { sub: `e2e-reconcile-${run}`, org_id: `e2e-reconcile-org-${run}` };
  const { token } = (await call(`${stack}/dev/token`, { method: 'POST', body: user })).body;
  const connectionId = `e2e-lost-${run}`;

  // Lose exactly this connection's creation webhook, then let Nango create it (as a completed
  // Connect session would, with the owner's tags) and send it.
  await control('POST', '/_emulator/webhooks/drop', { count: 1, connectionId, operation: 'creation' });
  await control('POST', '/_emulator/connections', {
    integration: 'github',
    connectionId,
    tags: { end_user_id: user.sub, organization_id: user.org_id },
    webhook: true,
  });
  const [delivery] = await until('the creation webhook is dropped', async () => {
    const { webhooks } = await control('GET', `/_emulator/webhooks?connectionId=${connectionId}`);
    return webhooks.length && webhooks.every((d) => d.status === 'dropped') ? webhooks : null;
  });
  assert.equal(delivery.payload.operation, 'creation');
  assert.equal(await listed(token, connectionId), undefined, 'the owner cannot see it');

  const first = await call(`${stack}/dev/reconcile`, { method: 'POST' });
  assert.equal(first.status, 200, JSON.stringify(first.body));
  assert.equal(first.body.complete, true, JSON.stringify(first.body));
  assert.ok(first.body.stored_new >= 1, JSON.stringify(first.body));
  assert.ok(first.body.nango_requests >= 1, JSON.stringify(first.body));

  const found = await listed(token, connectionId);
  assert.ok(found, 'listed after the reconciliation');
  assert.equal(found.status, 'active');
  assert.equal(found.integrationId, 'github');

  // A second run over the same Nango changes nothing of it.
  const second = await call(`${stack}/dev/reconcile`, { method: 'POST' });
  assert.equal(second.status, 200, JSON.stringify(second.body));
  assert.equal((await listed(token, connectionId)).updatedAt, found.updatedAt);
});
