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
