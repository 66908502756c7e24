// The Runtime API side, driven by a tiny stand-in for a function binary written in Node: it polls
// /invocation/next and answers each event as a Rust function built with lambda_runtime would.
// Each test has a function of its own, so that sandbox counts start from nothing.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LambdaFunction } from '../src/runtime-api.js';
import { MetricsCollector } from '../src/metrics.js';

const dir = mkdtempSync(join(tmpdir(), 'runtime-api-'));
const binary = join(dir, 'fake-function');
writeFileSync(
  binary,
  `#!/usr/bin/env node
const api = 'http://' + process.env.AWS_LAMBDA_RUNTIME_API + '/2018-06-01/runtime/invocation';
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
if (process.env.INIT_MS) await sleep(Number(process.env.INIT_MS));
for (;;) {
  const next = await fetch(api + '/next');
  const id = next.headers.get('lambda-runtime-aws-request-id');
  const event = await next.json();
  if (event.crash) process.exit(3);
  if (event.hang) { setInterval(() => {}, 1000); await new Promise(() => {}); }
  if (event.print) {
    // One line in two writes, apart in time: the pipe hands it over in two chunks.
    const half = Math.floor(event.print.length / 2);
    process.stdout.write(event.print.slice(0, half));
    await sleep(30);
    process.stdout.write(event.print.slice(half) + '\\nnot a metric\\n');
  }
  if (event.sleepMs) await sleep(event.sleepMs);
  const outcome = event.fail ? 'error' : 'response';
  await fetch(api + '/' + id + '/' + outcome, { method: 'POST', body: JSON.stringify({
    statusCode: 200, body: JSON.stringify({ echo: event, fn: process.env.AWS_LAMBDA_FUNCTION_NAME, pid: process.pid,
    deadline: Number(next.headers.get('lambda-runtime-deadline-ms')) > Date.now() }) }) });
}
`,
);
chmodSync(binary, 0o755);

const made = [];
after(() => made.forEach((fn) => fn.stop()));
function make({ name = 'echo', maxSandboxes = 4, env = {}, timeoutMs = 1000, ...rest } = {}) {
  const fn = new LambdaFunction({ name, binary, env: { PATH: process.env.PATH, ...env }, timeoutMs, maxSandboxes, log: () => {}, ...rest });
  made.push(fn);
  return fn;
}
const body = (answer) => JSON.parse(answer.body);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

test('invocations reach the process and its responses come back', async () => {
  const fn = make();
  const answers = await Promise.all([1, 2, 3].map((n) => fn.invoke({ n })));
  assert.deepEqual(
    answers.map((a) => { const { pid, ...rest } = body(a); return rest; }),
    [1, 2, 3].map((n) => ({ echo: { n }, fn: 'echo', deadline: true })),
  );
});

test('N concurrent invocations run in N sandboxes, each its own process', async () => {
  const fn = make({ maxSandboxes: 4 });
  const answers = await Promise.all([1, 2, 3].map((n) => fn.invoke({ n, sleepMs: 200 })));
  assert.equal(new Set(answers.map((a) => body(a).pid)).size, 3);
  assert.deepEqual([fn.starts, fn.crashes, fn.throttles, fn.sandboxes.length], [3, 0, 0, 3]);
});

test('at the maximum, every sandbox busy, the extra invocations are throttled at once', async () => {
  const fn = make({ maxSandboxes: 3 });
  const settled = await Promise.allSettled([1, 2, 3, 4, 5].map((n) => fn.invoke({ n, sleepMs: 300 })));
  assert.deepEqual(settled.map((s) => s.status), ['fulfilled', 'fulfilled', 'fulfilled', 'rejected', 'rejected']);
  assert.ok(settled[3].reason.throttled, settled[3].reason.message);
  assert.match(settled[3].reason.message, /echo throttled: all 3 sandbox\(es\) busy/);
  assert.equal(new Set(settled.slice(0, 3).map((s) => body(s.value).pid)).size, 3);
  assert.deepEqual([fn.starts, fn.throttles], [3, 2]);
});

test('sandboxes are reused warm: later invocations start no process', async () => {
  const fn = make({ maxSandboxes: 4 });
  const first = await Promise.all([1, 2].map((n) => fn.invoke({ n, sleepMs: 100 })));
  const pids = new Set(first.map((a) => body(a).pid));
  for (let n = 3; n < 8; n++) assert.ok(pids.has(body(await fn.invoke({ n })).pid));
  const again = await Promise.all([8, 9].map((n) => fn.invoke({ n, sleepMs: 100 })));
  assert.deepEqual(new Set(again.map((a) => body(a).pid)), pids);
  assert.equal(fn.starts, 2);
});

test('invokeWhenFree, as an event source mapping would, waits for a sandbox instead of failing', async () => {
  const fn = make({ maxSandboxes: 1 });
  const busy = fn.invoke({ n: 1, sleepMs: 300 });
  await assert.rejects(fn.invoke({ n: 2 }), /throttled/);
  const queued = await fn.invokeWhenFree({ n: 3 });
  assert.deepEqual(body(queued).echo, { n: 3 });
  assert.deepEqual(body(await busy).echo, { n: 1, sleepMs: 300 });
  assert.deepEqual([fn.starts, fn.throttles >= 2], [1, true]);
});

test('a function error rejects the invocation, and the sandbox stays warm', async () => {
  const fn = make();
  await assert.rejects(fn.invoke({ fail: true }), /echo failed/);
  await fn.invoke({ n: 1 });
  assert.deepEqual([fn.starts, fn.crashes], [1, 0]);
});

test('a crash fails the invocation and the next one starts a new process', async () => {
  const fn = make();
  await fn.invoke({ n: 0 });
  await assert.rejects(fn.invoke({ crash: true }), /exited while handling/);
  const answer = await fn.invoke({ n: 4 });
  assert.deepEqual(body(answer).echo, { n: 4 });
  assert.deepEqual([fn.starts, fn.crashes], [2, 1]);
});

test('a crash fails only the invocation its sandbox held; the others are answered', async () => {
  const fn = make();
  const [crashed, other] = await Promise.allSettled([fn.invoke({ crash: true }), fn.invoke({ n: 6, sleepMs: 100 })]);
  assert.match(crashed.reason.message, /exited while handling/);
  assert.deepEqual(body(other.value).echo, { n: 6, sleepMs: 100 });
  assert.deepEqual([fn.starts, fn.crashes], [2, 1]);
});

test('a hung invocation times out, and its sandbox is replaced', async () => {
  const fn = make();
  await assert.rejects(fn.invoke({ hang: true }), /timed out after 1000 ms/);
  const answer = await fn.invoke({ n: 5 });
  assert.deepEqual(body(answer).echo, { n: 5 });
  assert.deepEqual([fn.starts, fn.crashes], [2, 1]);
});

test('the timeout runs from when the process takes the event, not from its cold start', async () => {
  // An init of 1,200 ms, over the 1,000 ms timeout: the invocation that waited for it succeeds.
  const fn = make({ env: { INIT_MS: '1200' } });
  const answer = await fn.invoke({ n: 1, sleepMs: 600 });
  assert.deepEqual(body(answer).echo, { n: 1, sleepMs: 600 });
  assert.deepEqual([fn.starts, fn.crashes], [1, 0]);
});

test('status() shows each sandbox, the one busy longest as pid; killing it fails only that invocation', async () => {
  const fn = make();
  await Promise.all([fn.invoke({ n: 1 }), fn.invoke({ n: 2 })]);
  const idle = fn.status();
  assert.deepEqual({ ...idle, sandboxes: idle.sandboxes.map((s) => s.invoking) },
    { starts: 2, crashes: 0, throttles: 0, max: 4, pid: idle.sandboxes[0].pid, invoking: 0, sandboxes: [0, 0] });
  const hung = fn.invoke({ hang: true });
  await sleep(100);
  const short = fn.invoke({ n: 3, sleepMs: 300 });
  await sleep(50);
  const busy = fn.status();
  assert.equal(busy.invoking, 2);
  const hungPid = busy.sandboxes.find((s) => s.busyMs >= 100).pid;
  assert.equal(busy.pid, hungPid);
  process.kill(busy.pid, 'SIGKILL');
  await assert.rejects(hung, /exited while handling/);
  assert.deepEqual(body(await short).echo, { n: 3, sleepMs: 300 });
  const after = fn.status();
  assert.deepEqual([after.invoking, after.sandboxes.length, after.crashes], [0, 1, 1]);
  assert.ok(!after.sandboxes.some((s) => s.pid === hungPid));
});

test('a process that dies before taking an event fails what waits for it, and is not started over and over', async () => {
  const broken = new LambdaFunction({ name: 'broken', binary: '/bin/false', env: {}, timeoutMs: 1000, log: () => {} });
  made.push(broken);
  const answers = await Promise.allSettled([broken.invoke({ n: 1 }), broken.invoke({ n: 2 })]);
  assert.deepEqual(answers.map((a) => a.status), ['rejected', 'rejected']);
  assert.match(answers[0].reason.message, /exited \(1\) before taking/);
  await sleep(100);
  // One cold start for each invocation (each had its own sandbox), and none after.
  assert.deepEqual([broken.starts, broken.crashes, broken.sandboxes.length], [2, 2, 0]);
});

test('a binary that cannot be started fails the invocation, not the gateway', async () => {
  const missing = new LambdaFunction({ name: 'missing', binary: join(dir, 'no-such-binary'), env: {}, timeoutMs: 1000, log: () => {} });
  made.push(missing);
  await assert.rejects(missing.invoke({ n: 1 }), /before taking/);
  assert.deepEqual([missing.starts, missing.crashes], [1, 1]);
});

test("the processes' lines are relayed whole, and EMF lines reach the metrics", async () => {
  const logged = [];
  const metrics = new MetricsCollector();
  const fn = make({ log: (line) => logged.push(line), metrics });
  const emf = JSON.stringify({
    _aws: { Timestamp: Date.now(), CloudWatchMetrics: [{ Namespace: 'local', Dimensions: [['Function']], Metrics: [{ Name: 'Stored', Unit: 'Count' }] }] },
    Function: 'echo',
    Stored: 1,
  });
  await fn.invoke({ print: emf });
  await fn.invoke({ print: emf });
  await sleep(50);
  assert.ok(logged.some((line) => line.includes(`[echo] ${emf}`)), logged.join('\n'));
  assert.ok(logged.includes('[echo] not a metric'));
  assert.deepEqual(metrics.snapshot().metrics.map(({ metric, dimensions, sum }) => ({ metric, dimensions, sum })),
    [{ metric: 'Stored', dimensions: { Function: 'echo' }, sum: 2 }]);
});
