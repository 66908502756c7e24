// The stand-in answers PutEvents as EventBridge does (per-entry results, its checks), keeps what it
// took, and fails on demand.
import assert from 'node:assert/strict';
import { after, before, beforeEach, test } from 'node:test';
import { startEventBridge } from '../src/server.js';

let bridge;
const lines = [];
before(async () => { bridge = await startEventBridge({ log: (line) => lines.push(line) }); });
after(() => bridge.close());
beforeEach(async () => { await fetch(`${bridge.url}/events`, { method: 'DELETE' }); lines.length = 0; });

const putEvents = (entries) =>
  fetch(bridge.url, {
    method: 'POST',
    headers: { 'x-amz-target': 'AWSEvents.PutEvents', 'content-type': 'application/x-amz-json-1.1' },
    body: JSON.stringify({ Entries: entries }),
  });
const entry = (detail, type = 'connection.connected') => ({
  EventBusName: 'bus', Source: 'nango-connect', DetailType: type, Detail: JSON.stringify(detail), Time: 1764151200,
});

test('takes entries, answers one result each, and lists and prints them', async () => {
  const res = await putEvents([entry({ a: 1 }), entry({ b: 2 }, 'connection.failed')]);
  assert.equal(res.status, 200);
  const answer = await res.json();
  assert.equal(answer.FailedEntryCount, 0);
  assert.equal(answer.Entries.length, 2);
  assert.ok(answer.Entries.every((e) => e.EventId));
  const { events } = await (await fetch(`${bridge.url}/events`)).json();
  assert.deepEqual(events.map((e) => [e.detailType, e.detail, e.time, e.bus]), [
    ['connection.connected', { a: 1 }, '2025-11-26T10:00:00.000Z', 'bus'],
    ['connection.failed', { b: 2 }, '2025-11-26T10:00:00.000Z', 'bus'],
  ]);
  const failed = await (await fetch(`${bridge.url}/events?detailType=connection.failed`)).json();
  assert.equal(failed.events.length, 1);
  assert.equal(lines.length, 2);
  assert.match(lines[1], /^\[eventbridge\] connection\.failed \{"b":2\}$/);
});

test('refuses what EventBridge refuses, entry by entry', async () => {
  const tooBig = entry({ x: 'x'.repeat(256 * 1024) });
  const notObject = { ...entry({}), Detail: '[1]' };
  const answer = await (await putEvents([tooBig, entry({ ok: true }), notObject])).json();
  assert.equal(answer.FailedEntryCount, 2);
  assert.equal(answer.Entries[0].ErrorCode, 'MalformedDetail');
  assert.ok(answer.Entries[1].EventId);
  assert.equal(answer.Entries[2].ErrorCode, 'MalformedDetail');
  assert.equal((await putEvents(Array.from({ length: 11 }, () => entry({})))).status, 400);
  const unknown = await fetch(bridge.url, { method: 'POST', headers: { 'x-amz-target': 'AWSEvents.ListRules' }, body: '{}' });
  assert.equal(unknown.status, 400);
});

test('fails the next calls on demand', async () => {
  await fetch(`${bridge.url}/_control/fail`, { method: 'POST', body: JSON.stringify({ mode: 'request', count: 1 }) });
  assert.equal((await putEvents([entry({})])).status, 500);
  await fetch(`${bridge.url}/_control/fail`, { method: 'POST', body: JSON.stringify({ mode: 'entries', count: 1 }) });
  const refused = await (await putEvents([entry({}), entry({})])).json();
  assert.equal(refused.FailedEntryCount, 2);
  assert.equal(refused.Entries[0].ErrorCode, 'InternalFailure');
  const ok = await (await putEvents([entry({ after: true })])).json();
  assert.equal(ok.FailedEntryCount, 0);
  const { events } = await (await fetch(`${bridge.url}/events`)).json();
  assert.deepEqual(events.map((e) => e.detail), [{ after: true }]);
});
