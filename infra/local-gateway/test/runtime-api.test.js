// The Runtime API side, driven by a tiny stand-in for a function binary written in Node: it polls
// /invocation/next and answers each event as a Rust function built with lambda_runtime would.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LambdaFunction } from '../src/runtime-api.js';

const dir = mkdtempSync(join(tmpdir(), 'runtime-api-'));
const binary = join(dir, 'fake-function');
writeFileSync(
  binary,
  `#!/usr/bin/env node
const api = 'http://' + process.env.AWS_LAMBDA_RUNTIME_API + '/2018-06-01/runtime/invocation';
for (;;) {
  const next = await fetch(api + '/next');
  const id = next.headers.get('lambda-runtime-aws-request-id');
  const event = await next.json();
  if (event.crash) process.exit(3);
  if (event.hang) { setInterval(() => {}, 1000); await new Promise(() => {}); }
  if (event.sleepMs) await new Promise((resolve) => setTimeout(resolve, event.sleepMs));
  const outcome = event.fail ? 'error' : 'response';
  await fetch(api + '/' + id + '/' + outcome, { method: 'POST', body: JSON.stringify({
    statusCode: 200, body: JSON.stringify({ echo: event, fn: process.env.AWS_LAMBDA_FUNCTION_NAME,
    deadline: Number(next.headers.get('lambda-runtime-deadline-ms')) > Date.now() }) }) });
}
`,
);
chmodSync(binary, 0o755);
const fn = new LambdaFunction({ name: 'echo', binary, env: { PATH: process.env.PATH }, timeoutMs: 1000, log: () => {} });
await fn.listen();
after(() => fn.stop());

test('invocations reach the process and its responses come back, one at a time', async () => {
  const answers = await Promise.all([1, 2, 3].map((n) => fn.invoke({ n })));
  assert.deepEqual(
    answers.map((a) => JSON.parse(a.body)),
    [1, 2, 3].map((n) => ({ echo: { n }, fn: 'echo', deadline: true })),
  );
});

test('a function error rejects the invocation', async () => {
  await assert.rejects(fn.invoke({ fail: true }), /echo failed/);
});

test('a crash fails the invocation and the next one starts a new process', async () => {
  const { starts, crashes } = fn;
  await assert.rejects(fn.invoke({ crash: true }), /exited/);
  const answer = await fn.invoke({ n: 4 });
  assert.deepEqual(JSON.parse(answer.body).echo, { n: 4 });
  assert.deepEqual([fn.starts, fn.crashes], [starts + 1, crashes + 1]);
});

test('a hung invocation times out, and the sandbox is replaced', async () => {
  const { starts, crashes } = fn;
  await assert.rejects(fn.invoke({ hang: true }), /timed out/);
  const answer = await fn.invoke({ n: 5 });
  assert.deepEqual(JSON.parse(answer.body).echo, { n: 5 });
  assert.deepEqual([fn.starts, fn.crashes], [starts + 1, crashes + 1]);
});

test('time spent queued behind a busy sandbox does not count against the timeout', async () => {
  const { starts, crashes } = fn;
  // Three invocations of 600 ms each, one at a time: the last waits 1,200 ms, over the 1,000 ms
  // timeout, before the process takes it.
  const answers = await Promise.all([1, 2, 3].map((n) => fn.invoke({ n, sleepMs: 600 })));
  assert.deepEqual(answers.map((a) => JSON.parse(a.body).echo.n), [1, 2, 3]);
  assert.deepEqual([fn.starts, fn.crashes], [starts, crashes]);
});

test('a crash fails only the invocation the process held; the queued ones go to a new process', async () => {
  const { starts, crashes } = fn;
  const [crashed, queued] = await Promise.allSettled([fn.invoke({ crash: true }), fn.invoke({ n: 6 })]);
  assert.match(crashed.reason.message, /exited while handling/);
  assert.deepEqual(JSON.parse(queued.value.body).echo, { n: 6 });
  assert.deepEqual([fn.starts, fn.crashes], [starts + 1, crashes + 1]);
});

test('status() shows the process and whether it is mid-invocation; killing it then fails that invocation', async () => {
  await fn.invoke({ n: 7 });
  assert.deepEqual(fn.status(), { starts: fn.starts, crashes: fn.crashes, pid: fn.process.pid, invoking: 0 });
  const hung = fn.invoke({ hang: true });
  while (fn.status().invoking === 0) await new Promise((resolve) => setTimeout(resolve, 10));
  const { pid, crashes } = fn.status();
  process.kill(pid, 'SIGKILL');
  await assert.rejects(hung, /exited while handling/);
  assert.deepEqual([fn.status().invoking, fn.status().pid, fn.crashes], [0, null, crashes + 1]);
});

test('a process that dies before taking an event fails what waits for it, and is not started over and over', async () => {
  const broken = new LambdaFunction({ name: 'broken', binary: '/bin/false', env: {}, timeoutMs: 1000, log: () => {} });
  await broken.listen();
  try {
    const answers = await Promise.allSettled([broken.invoke({ n: 1 }), broken.invoke({ n: 2 })]);
    assert.deepEqual(answers.map((a) => a.status), ['rejected', 'rejected']);
    assert.match(answers[0].reason.message, /exited \(1\) before taking/);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual([broken.starts, broken.crashes], [1, 1]);
  } finally {
    broken.stop();
  }
});
