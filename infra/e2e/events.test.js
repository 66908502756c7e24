// End to end, over HTTP only: what the app's subscribers see on the event bus while a user connects,
// fails, reconnects and deletes a connection, and when Nango sends a sync webhook. Runs against the
// stack scripts/dev starts (the stream poller feeding the real publish-events binary, the local
// EventBridge) and the Nango emulator.
//
//   STACK_URL        the gateway (http://127.0.0.1:3000)
//   NANGO_HOST       the emulator (http://127.0.0.1:3003)
//   NANGO_SECRET_KEY the emulator's secret key (to delete the connection)
//   EVENTBRIDGE_URL  the local EventBridge (http://127.0.0.1:3005)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { call, stack } from './http.js';

const nangoHost = process.env.NANGO_HOST ?? 'http://127.0.0.1:3003';
const secretKey = process.env.NANGO_SECRET_KEY;
const bus = process.env.EVENTBRIDGE_URL ?? 'http://127.0.0.1:3005';
const emulatorConfig = JSON.parse(readFileSync(new URL('../nango-emulator/emulator.config.json', import.meta.url)));
const integration = 'github';

// Events arrive asynchronously (stream → poller → publish-events → bus): poll until `count` are there.
async function eventsAbout(connectionId, count) {
  const deadline = Date.now() + 20_000;
  let mine = [];
  while (Date.now() < deadline) {
    const { body } = await call(`${bus}/events`);
    mine = body.events.filter((e) => e.detail.connectionId === connectionId);
    if (mine.length >= count) break;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  // A little longer: a duplicate, if there were one, would arrive now.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const { body } = await call(`${bus}/events`);
  return body.events.filter((e) => e.detail.connectionId === connectionId);
}

test('a connection\'s life on the bus: connected, failed, reconnected, deleted, once each and in order', async () => {
  const run = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  const user = { sub: `events-user-${run}`, org_id: `events-org-${run}` };
  const token = (await call(`${stack}/dev/token`, { method: 'POST', body: user })).body.token;
  const session = await call(`${stack}/sessions`, { method: 'POST', token, body: { allowedIntegrations: [integration] } });
  assert.equal(session.status, 201, JSON.stringify(session.body));
  const authorize = async (sessionToken) => {
    const url = `${nangoHost}/api-auth/api-key/${integration}?connect_session_token=${sessionToken}`;
    const answer = await call(url, { method: 'POST', body: { apiKey: 'events-key' } });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    return answer.body.connectionId;
  };
  const connectionId = await authorize(session.body.sessionToken);
  assert.deepEqual((await eventsAbout(connectionId, 1)).map((e) => e.detailType), ['connection.connected']);

  // Nango repeats refresh failures: the second one changes nothing and publishes nothing.
  for (let i = 0; i < 2; i++) {
    const failure = await call(`${nangoHost}/_emulator/connections/${connectionId}/refresh-failure`, { method: 'POST' });
    assert.ok(failure.status < 300, JSON.stringify(failure.body));
  }
  await eventsAbout(connectionId, 2);

  const reconnect = await call(`${stack}/sessions/reconnect`, { method: 'POST', token, body: { connectionId } });
  assert.equal(reconnect.status, 201, JSON.stringify(reconnect.body));
  assert.equal(await authorize(reconnect.body.sessionToken), connectionId);
  await eventsAbout(connectionId, 3);

  const deleted = await call(`${nangoHost}/connections/${connectionId}?provider_config_key=${integration}`, {
    method: 'DELETE',
    token: secretKey,
  });
  assert.equal(deleted.status, 200, JSON.stringify(deleted.body));
  const events = await eventsAbout(connectionId, 4);

  assert.deepEqual(events.map((e) => e.detailType), [
    'connection.connected', 'connection.failed', 'connection.reconnected', 'connection.deleted',
  ]);
  assert.ok(events.every((e) => e.source === 'nango-connect' && e.bus === 'nango-connect-local'));
  assert.ok(events.every((e) => e.detail.schemaVersion === 1));
  assert.deepEqual(events.map((e) => e.detail.status), ['active', 'error', 'active', 'deleted']);
  assert.deepEqual(events[1].detail.error, { type: 'refresh_token_external_error', description: 'invalid_grant' });
  assert.deepEqual(events[0].detail.owner, { endUserId: user.sub, organizationId: user.org_id });
  const versions = events.map((e) => e.detail.connectionVersion);
  assert.deepEqual([...versions].sort((a, b) => a - b), versions, 'in the order of the changes');
  assert.equal(new Set(versions).size, 4);
});

test('a signed sync webhook arrives on the bus with Nango\'s body intact; an unsigned one does not', async () => {
  const run = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  const body = JSON.stringify({
    connectionId: `events-sync-${run}`, from: 'nango', model: 'Issue', modifiedAfter: '2026-11-26T10:00:00.000Z',
    providerConfigKey: integration, queryTimeStamp: null, responseResults: { added: 2, deleted: 0, updated: 5 },
    success: true, syncName: 'issues', syncType: 'INCREMENTAL', type: 'sync',
  });
  const unsigned = await call(`${stack}/webhooks/nango`, { method: 'POST', body, headers: { 'x-nango-hmac-sha256': '0'.repeat(64) } });
  assert.equal(unsigned.status, 401);
  const signature = createHmac('sha256', emulatorConfig.webhookSigningKey).update(body).digest('hex');
  const answer = await call(`${stack}/webhooks/nango`, { method: 'POST', body, headers: { 'x-nango-hmac-sha256': signature } });
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  assert.deepEqual(answer.body, { result: 'published' });

  const events = await eventsAbout(`events-sync-${run}`, 1);
  assert.equal(events.length, 1, 'once, and not for the unsigned one');
  assert.equal(events[0].detailType, 'nango.webhook.sync');
  assert.equal(JSON.stringify(events[0].detail), body);
});

test('the bus refusing events: publish-events reports the record, it is retried, and published once', async () => {
  const run = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  const token = (await call(`${stack}/dev/token`, { method: 'POST', body: { sub: `events-retry-${run}` } })).body.token;
  const session = await call(`${stack}/sessions`, { method: 'POST', token, body: { allowedIntegrations: [integration] } });
  assert.equal(session.status, 201, JSON.stringify(session.body));
  // The next two PutEvents calls refuse every entry (as EventBridge does when throttled).
  assert.equal((await call(`${bus}/_control/fail`, { method: 'POST', body: { mode: 'entries', count: 2 } })).status, 200);
  const url = `${nangoHost}/api-auth/api-key/${integration}?connect_session_token=${session.body.sessionToken}`;
  const { body } = await call(url, { method: 'POST', body: { apiKey: 'events-key' } });
  const events = await eventsAbout(body.connectionId, 1);
  assert.deepEqual(events.map((e) => e.detailType), ['connection.connected']);
});
