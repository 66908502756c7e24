// End to end: the metrics the functions write as EMF lines, as the local gateway totals them
// (GET /dev/metrics) — what CloudWatch would extract from the same lines when deployed. A session,
// a connection's creation webhook (confirmed with Nango) and a forged signature, each counted where
// the runbook's alarms and dashboard look for it.
//
//   STACK_URL   the gateway (http://127.0.0.1:3000)
//   NANGO_HOST  the emulator (http://127.0.0.1:3003)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { call, control, emulated, stack, until } from './http.js';

const skip = !emulated && 'needs the Nango emulator';
const run = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;

/** The total of `metric` over the series whose dimensions include all of `dimensions`. */
async function total(metric, dimensions) {
  const answer = await call(`${stack}/dev/metrics`);
  assert.equal(answer.status, 200);
  return answer.body.metrics
    .filter((m) => m.namespace === 'NangoConnect' && m.metric === metric)
    .filter((m) => Object.entries(dimensions).every(([name, value]) => m.dimensions[name] === value))
    .reduce((sum, m) => sum + m.sum, 0);
}

test('a session, a confirmed creation and a forged webhook are counted where the alarms look', { skip }, async () => {
  const reset = await call(`${stack}/dev/metrics`, { method: 'DELETE' });
  assert.equal(reset.status, 204);

  const claims = { sub: `e2e-metrics-${run}`, org_id: `e2e-metrics-org-${run}` };
  const token = (await call(`${stack}/dev/token`, { method: 'POST', body: claims })).body.token;
  const session = await call(`${stack}/sessions`, { method: 'POST', token, body: {} });
  assert.equal(session.status, 201, JSON.stringify(session.body));

  // A connection Nango has, and its creation webhook: the receiver confirms it (one exact lookup).
  const connectionId = `e2e-metrics-${run}`;
  const tags = { end_user_id: claims.sub, organization_id: claims.org_id };
  await control('POST', '/_emulator/connections', { integration: 'github', connectionId, tags, webhook: true });
  await until('the creation webhook counted as stored', async () =>
    (await total('Webhooks', { Function: 'webhook-receiver', Outcome: 'stored' })) >= 1);

  const forged = await call(`${stack}/webhooks/nango`, {
    method: 'POST',
    headers: { 'x-nango-hmac-sha256': '0'.repeat(64) },
    body: { from: 'nango', type: 'auth', operation: 'creation', connectionId, providerConfigKey: 'github', success: true },
  });
  assert.equal(forged.status, 401);

  assert.equal(await total('SessionsCreated', { Function: 'create-session' }), 1);
  assert.equal(await total('NangoRequests', { Function: 'create-session', Operation: 'create_session', Answer: '2xx' }), 1);
  assert.equal(await total('WebhookTypes', { Function: 'webhook-receiver', Type: 'auth' }), 1);
  assert.equal(await total('NangoRequests', { Function: 'webhook-receiver', Operation: 'find_connection', Answer: '2xx' }), 1);
  assert.equal(await total('Webhooks', { Function: 'webhook-receiver', Outcome: 'signature_rejected' }), 1);
  assert.equal(await total('NangoUnavailable', {}), 0);
});
