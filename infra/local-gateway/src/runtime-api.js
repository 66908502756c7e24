// Runs one function binary as Lambda does: the process polls the Lambda Runtime API for its next
// event and posts back the response, one invocation at a time. A process that exits is started
// again on the next invocation, like a new sandbox (a cold start).
//
// Where Lambda would run concurrent invocations in more sandboxes, this queues them for the one
// process. The queue stands for that scaling out, so it changes nothing else: the function's
// timeout runs from when the process takes the event, and a sandbox that crashes or times out
// fails only the invocation it held.
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { randomUUID } from 'node:crypto';

const PREFIX = '/2018-06-01/runtime';
const INIT_TIMEOUT_MS = 10_000;

export class LambdaFunction {
  // `observe(what, detail)`, if given, hears each step of a sandbox's life as it happens: 'spawn'
  // ({ pid }), 'next' (a poll for the next event), 'response' and 'error' ({ id }). The benchmark
  // (bench/) times cold starts with it.
  constructor({ name, binary, env, timeoutMs, log = console.log, observe = () => {} }) {
    this.name = name;
    this.observe = observe;
    this.binary = binary;
    this.env = env;
    this.timeoutMs = timeoutMs;
    this.log = log;
    this.queue = [];
    this.pending = new Map();
    this.waiting = null;
    this.process = null;
    // Sandboxes started (the first one included) and exits not asked for (crashes, timeouts'
    // kills): the hostile-input campaign checks that neither grows (GET /dev/functions).
    this.starts = 0;
    this.crashes = 0;
    // The invocation the process holds now (handed over, not yet answered), or null.
    this.current = null;
  }

  /** What GET /dev/functions shows: sandbox starts, crashes, the running process and whether it
   * is in the middle of an invocation (the soak kills it then). */
  status() {
    return { starts: this.starts, crashes: this.crashes, pid: this.process?.pid ?? null, invoking: this.current ? 1 : 0 };
  }

  async listen() {
    this.server = createServer((req, res) => this.#runtimeApi(req, res));
    await new Promise((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.runtimeApi = `127.0.0.1:${this.server.address().port}`;
  }

  // Resolves with the function's response object, or rejects (error, crash, timeout).
  invoke(event) {
    this.start();
    return new Promise((resolve, reject) => {
      const id = randomUUID();
      this.pending.set(id, { resolve, reject, timer: null });
      this.queue.push({ id, event });
      this.#dispatch();
    });
  }

  stop() {
    this.stopping = true;
    clearTimeout(this.initTimer);
    this.process?.kill('SIGTERM');
    this.server?.close();
  }

  #timedOut(id) {
    const call = this.pending.get(id);
    if (!call) return;
    this.pending.delete(id);
    call.reject(new Error(`${this.name} timed out after ${this.timeoutMs} ms`));
    // Lambda stops a timed-out sandbox; what is queued goes to a new one.
    const hung = this.process;
    this.process = null;
    if (hung) this.crashes += 1;
    this.waiting = null;
    this.current = null;
    hung?.kill('SIGKILL');
    if (this.queue.length) this.start();
  }

  // Starts the process now (a cold start), unless it is already running.
  start() {
    if (this.process || this.stopping) return;
    const child = spawn(this.binary, [], {
      env: {
        ...this.env,
        AWS_LAMBDA_RUNTIME_API: this.runtimeApi,
        AWS_LAMBDA_FUNCTION_NAME: this.name,
        AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE: '256',
        AWS_LAMBDA_LOG_GROUP_NAME: `/aws/lambda/${this.name}`,
        AWS_LAMBDA_LOG_STREAM_NAME: 'local',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.process = child;
    this.observe('spawn', { pid: child.pid });
    this.starts += 1;
    // Lambda gives a sandbox's init 10 s; one that never asks for an event is stopped (its exit
    // then fails what waits for it).
    clearTimeout(this.initTimer);
    this.initTimer = setTimeout(() => {
      if (this.process !== child) return;
      this.log(`[${this.name}] init did not finish in ${INIT_TIMEOUT_MS} ms`);
      child.kill('SIGKILL');
    }, INIT_TIMEOUT_MS);
    this.initTimer.unref();
    const relay = (stream) =>
      stream.on('data', (chunk) => {
        for (const line of chunk.toString().split('\n')) if (line.trim()) this.log(`[${this.name}] ${line}`);
      });
    relay(child.stdout);
    relay(child.stderr);
    child.on('exit', (code, signal) => {
      // A sandbox already replaced (after a timeout) takes nothing down with it.
      if (this.process !== child || this.stopping) return;
      const held = this.current;
      this.process = null;
      this.waiting = null;
      this.current = null;
      this.crashes += 1;
      clearTimeout(this.initTimer);
      this.log(`[${this.name}] exited (${signal ?? code})`);
      if (held) {
        // Only the invocation it held fails; the queued ones go to a new sandbox.
        const call = this.pending.get(held);
        this.pending.delete(held);
        clearTimeout(call?.timer);
        call?.reject(new Error(`${this.name} exited while handling ${held}`));
        if (this.queue.length) this.start();
        return;
      }
      // It died before taking an event (a failed cold start): Lambda fails the invocations that
      // waited for it, rather than starting it over and over.
      for (const { id } of this.queue) {
        this.pending.get(id)?.reject(new Error(`${this.name} exited (${signal ?? code}) before taking ${id}`));
        this.pending.delete(id);
      }
      this.queue = [];
    });
  }

  #dispatch() {
    if (!this.waiting || !this.queue.length) return;
    const { id, event } = this.queue.shift();
    const res = this.waiting;
    this.waiting = null;
    this.current = id;
    const call = this.pending.get(id);
    call.timer = setTimeout(() => this.#timedOut(id), this.timeoutMs);
    res.writeHead(200, {
      'content-type': 'application/json',
      'lambda-runtime-aws-request-id': id,
      'lambda-runtime-deadline-ms': String(Date.now() + this.timeoutMs),
      'lambda-runtime-invoked-function-arn': `arn:aws:lambda:us-east-1:000000000000:function:${this.name}`,
      'lambda-runtime-trace-id': `Root=1-${Math.floor(Date.now() / 1000).toString(16)}-${id.replaceAll('-', '').slice(0, 24)};Sampled=0`,
    });
    res.end(JSON.stringify(event));
  }

  #runtimeApi(req, res) {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => {
      const path = req.url.split('?')[0];
      const body = Buffer.concat(chunks).toString();
      if (req.method === 'GET' && path === `${PREFIX}/invocation/next`) {
        this.observe('next', {});
        clearTimeout(this.initTimer);
        this.waiting = res;
        this.#dispatch();
        return;
      }
      const match = path.match(/^\/2018-06-01\/runtime\/invocation\/([^/]+)\/(response|error)$/);
      if (req.method === 'POST' && match) {
        this.observe(match[2], { id: match[1] });
        const call = this.pending.get(match[1]);
        this.pending.delete(match[1]);
        if (this.current === match[1]) this.current = null;
        if (call) {
          clearTimeout(call.timer);
          if (match[2] === 'response') {
            try {
              call.resolve(JSON.parse(body));
            } catch {
              call.reject(new Error(`${this.name} answered with invalid JSON`));
            }
          } else {
            call.reject(new Error(`${this.name} failed: ${body}`));
          }
        }
        res.writeHead(202, { 'content-type': 'application/json' }).end('{"status":"OK"}');
        return;
      }
      if (req.method === 'POST' && path === `${PREFIX}/init/error`) {
        this.log(`[${this.name}] init error: ${body}`);
        res.writeHead(202, { 'content-type': 'application/json' }).end('{"status":"OK"}');
        return;
      }
      res.writeHead(404).end();
    });
  }
}
