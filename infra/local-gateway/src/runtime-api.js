// Runs one function binary as Lambda does: in sandboxes, each its own process polling its own
// Lambda Runtime API for the next event and posting back the response, one invocation at a time.
//
// As Lambda scales a function out: an invocation goes to an idle sandbox (warm); when every
// sandbox is busy and there are fewer than `maxSandboxes`, a new one is started for it (a cold
// start); when every sandbox is busy at the maximum, the invocation is throttled at once
// (`ThrottledError`, Lambda's TooManyRequestsException), and what the caller does with that is its
// own behaviour (gateway.js answers as API Gateway and function URLs do; the stream poller and
// the scheduled reconciliation retry later, as Lambda's event source mapping and asynchronous
// invocations do). A sandbox that exits is gone; the next invocation that needs one starts it.
// The function's timeout runs from when the process takes the event, and a sandbox that crashes
// or times out fails only the invocation it held.
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { randomUUID } from 'node:crypto';
import { createInterface } from 'node:readline';

const PREFIX = '/2018-06-01/runtime';
const INIT_TIMEOUT_MS = 10_000;
export const DEFAULT_MAX_SANDBOXES = 4;

/** Every sandbox of the function is busy and there are `max` of them: Lambda's throttle
 * (TooManyRequestsException, Reason ReservedFunctionConcurrentInvocationLimitExceeded). */
export class ThrottledError extends Error {
  constructor(name, max) {
    super(`${name} throttled: all ${max} sandbox(es) busy`);
    this.throttled = true;
  }
}

// Dimmed on a terminal: the EMF lines are for CloudWatch (GET /dev/metrics sums them), not for
// reading.
const dim = process.stdout.isTTY ? (line) => `\x1b[2m${line}\x1b[22m` : (line) => line;

export class LambdaFunction {
  // `observe(what, detail)`, if given, hears each step of a sandbox's life as it happens: 'spawn'
  // ({ pid }), 'next' (a poll for the next event), 'response' and 'error' ({ id }). The benchmark
  // (bench/) times cold starts with it. `metrics`, if given, is a MetricsCollector (metrics.js)
  // that hears every line the processes write.
  constructor({ name, binary, env, timeoutMs, maxSandboxes = DEFAULT_MAX_SANDBOXES, log = console.log, observe = () => {}, metrics = null }) {
    Object.assign(this, { name, binary, env, timeoutMs, maxSandboxes, log, observe, metrics });
    this.sandboxes = [];
    // Sandboxes started and exits not asked for (crashes, timeouts' kills), over the function's
    // life: the hostile-input campaign checks that no sandbox is restarted (GET /dev/functions).
    this.starts = 0;
    this.crashes = 0;
    this.throttles = 0;
  }

  /** What GET /dev/functions shows: sandbox starts, crashes and throttles; each live sandbox's
   * process, and whether and for how long it holds an invocation; `pid` is the sandbox busy the
   * longest (else the first), `invoking` how many are busy. */
  status() {
    const now = Date.now();
    const sandboxes = this.sandboxes.map((s) => ({ pid: s.process?.pid ?? null, invoking: s.current ? 1 : 0, busyMs: s.current ? now - s.takenAt : 0 }));
    const longest = [...sandboxes].sort((a, b) => b.busyMs - a.busyMs || b.invoking - a.invoking)[0];
    return {
      starts: this.starts,
      crashes: this.crashes,
      throttles: this.throttles,
      max: this.maxSandboxes,
      pid: longest?.pid ?? null,
      invoking: sandboxes.reduce((n, s) => n + s.invoking, 0),
      sandboxes,
    };
  }

  /** The first sandbox's process (the benchmark runs one sandbox and watches it). */
  get process() {
    return this.sandboxes[0]?.process ?? null;
  }

  // Kept for callers that set up before the first start; each sandbox listens on its own.
  async listen() {}

  /** Starts a sandbox now (a cold start ahead of the first invocation), unless one exists. */
  start() {
    if (this.stopping || this.sandboxes.length) return;
    this.#newSandbox();
  }

  // Resolves with the function's response object, or rejects (error, crash, timeout, or a
  // ThrottledError at once when every sandbox is busy at the maximum).
  invoke(event) {
    if (this.stopping) return Promise.reject(new Error(`${this.name} is stopped`));
    let sandbox = this.sandboxes.find((s) => !s.assigned);
    if (!sandbox) {
      if (this.sandboxes.length >= this.maxSandboxes) {
        this.throttles += 1;
        return Promise.reject(new ThrottledError(this.name, this.maxSandboxes));
      }
      sandbox = this.#newSandbox();
    }
    return sandbox.assign(event);
  }

  /** As an asynchronous invocation or an event source mapping: a throttle is retried later (with
   * a growing wait, up to `patienceMs` in all) rather than failing the event. */
  async invokeWhenFree(event, { patienceMs = 120_000 } = {}) {
    const deadline = Date.now() + patienceMs;
    for (let wait = 50; ; wait = Math.min(wait * 2, 1000)) {
      try {
        return await this.invoke(event);
      } catch (error) {
        if (!error.throttled || Date.now() + wait > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, wait));
      }
    }
  }

  stop() {
    this.stopping = true;
    for (const sandbox of this.sandboxes) sandbox.stop();
  }

  #newSandbox() {
    const sandbox = new Sandbox(this);
    this.sandboxes.push(sandbox);
    sandbox.boot();
    return sandbox;
  }

  /** A sandbox is gone (exited, or stopped after a timeout): it takes no more invocations. */
  retire(sandbox, { crashed }) {
    this.sandboxes = this.sandboxes.filter((s) => s !== sandbox);
    if (crashed) this.crashes += 1;
  }

  relay(line) {
    if (this.metrics?.record(line)) this.log(dim(`[${this.name}] ${line}`));
    else this.log(`[${this.name}] ${line}`);
  }
}

/** One execution environment: a process, its own Runtime API endpoint, and at most one
 * invocation at a time (assigned, then taken by the process's poll, then answered). */
class Sandbox {
  constructor(fn) {
    this.fn = fn;
    this.process = null;
    this.waiting = null; // the process's pending GET /next
    this.assigned = null; // { id, event, resolve, reject, timer } until it is answered
    this.current = null; // the id the process holds now (taken, not yet answered)
    this.takenAt = 0;
  }

  assign(event) {
    return new Promise((resolve, reject) => {
      this.assigned = { id: randomUUID(), event, resolve, reject, timer: null };
      this.#dispatch();
    });
  }

  async boot() {
    const fn = this.fn;
    fn.starts += 1;
    this.server = createServer((req, res) => this.#runtimeApi(req, res));
    await new Promise((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    if (this.stopped) return this.#close();
    const child = spawn(fn.binary, [], {
      env: {
        ...fn.env,
        AWS_LAMBDA_RUNTIME_API: `127.0.0.1:${this.server.address().port}`,
        AWS_LAMBDA_FUNCTION_NAME: fn.name,
        AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE: '256',
        AWS_LAMBDA_LOG_GROUP_NAME: `/aws/lambda/${fn.name}`,
        AWS_LAMBDA_LOG_STREAM_NAME: `local-${fn.starts}`,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.process = child;
    fn.observe('spawn', { pid: child.pid });
    // Lambda gives a sandbox's init 10 s; one that never asks for an event is stopped (its exit
    // then fails what waits for it).
    this.initTimer = setTimeout(() => {
      fn.log(`[${fn.name}] init did not finish in ${INIT_TIMEOUT_MS} ms`);
      child.kill('SIGKILL');
    }, INIT_TIMEOUT_MS);
    this.initTimer.unref();
    // Whole lines, however the pipe splits them: an EMF line must reach the metrics in one piece.
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => {
        if (line.trim()) fn.relay(line);
      });
    }
    // A binary that cannot be spawned at all (missing, not executable) fails as a crash would.
    child.on('error', (error) => {
      fn.log(`[${fn.name}] ${error.message}`);
      if (child.pid === undefined) this.#exited(error.code, null);
    });
    child.on('exit', (code, signal) => this.#exited(code, signal));
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.initTimer);
    clearTimeout(this.assigned?.timer);
    this.process?.kill('SIGTERM');
    this.#close();
  }

  #exited(code, signal) {
    if (this.gone) return;
    this.gone = true;
    clearTimeout(this.initTimer);
    this.#close();
    if (this.stopped) return;
    const fn = this.fn;
    fn.retire(this, { crashed: true });
    fn.log(`[${fn.name}] exited (${signal ?? code})`);
    const call = this.assigned;
    this.assigned = null;
    if (!call) return;
    clearTimeout(call.timer);
    // Only the invocation it held fails. One it had not taken yet failed with the cold start, as
    // Lambda fails an invocation whose sandbox's init fails (it does not start it over and over).
    call.reject(new Error(this.current
      ? `${fn.name} exited while handling ${call.id}`
      : `${fn.name} exited (${signal ?? code}) before taking ${call.id}`));
  }

  #timedOut() {
    const fn = this.fn;
    const call = this.assigned;
    this.assigned = null;
    call?.reject(new Error(`${fn.name} timed out after ${fn.timeoutMs} ms`));
    // Lambda stops a timed-out sandbox; the next invocation goes to another one.
    this.stopped = true;
    fn.retire(this, { crashed: true });
    this.process?.kill('SIGKILL');
    this.#close();
  }

  #close() {
    if (this.closed || !this.server) return;
    this.closed = true;
    this.server.close();
    this.server.closeAllConnections?.();
  }

  #dispatch() {
    if (!this.waiting || !this.assigned || this.current) return;
    const { id, event } = this.assigned;
    const fn = this.fn;
    const res = this.waiting;
    this.waiting = null;
    this.current = id;
    this.takenAt = Date.now();
    this.assigned.timer = setTimeout(() => this.#timedOut(), fn.timeoutMs);
    res.writeHead(200, {
      'content-type': 'application/json',
      'lambda-runtime-aws-request-id': id,
      'lambda-runtime-deadline-ms': String(Date.now() + fn.timeoutMs),
      'lambda-runtime-invoked-function-arn': `arn:aws:lambda:us-east-1:000000000000:function:${fn.name}`,
      'lambda-runtime-trace-id': `Root=1-${Math.floor(Date.now() / 1000).toString(16)}-${id.replaceAll('-', '').slice(0, 24)};Sampled=0`,
    });
    res.end(JSON.stringify(event));
  }

  #runtimeApi(req, res) {
    const fn = this.fn;
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => {
      const path = req.url.split('?')[0];
      const body = Buffer.concat(chunks).toString();
      if (req.method === 'GET' && path === `${PREFIX}/invocation/next`) {
        fn.observe('next', {});
        clearTimeout(this.initTimer);
        this.waiting = res;
        this.#dispatch();
        return;
      }
      const match = path.match(/^\/2018-06-01\/runtime\/invocation\/([^/]+)\/(response|error)$/);
      if (req.method === 'POST' && match) {
        fn.observe(match[2], { id: match[1] });
        const call = this.assigned?.id === match[1] ? this.assigned : null;
        if (call) {
          this.assigned = null;
          this.current = null;
          clearTimeout(call.timer);
          if (match[2] === 'response') {
            try {
              call.resolve(JSON.parse(body));
            } catch {
              call.reject(new Error(`${fn.name} answered with invalid JSON`));
            }
          } else {
            call.reject(new Error(`${fn.name} failed: ${body}`));
          }
        }
        res.writeHead(202, { 'content-type': 'application/json' }).end('{"status":"OK"}');
        return;
      }
      if (req.method === 'POST' && path === `${PREFIX}/init/error`) {
        fn.log(`[${fn.name}] init error: ${body}`);
        res.writeHead(202, { 'content-type': 'application/json' }).end('{"status":"OK"}');
        return;
      }
      res.writeHead(404).end();
    });
  }
}
