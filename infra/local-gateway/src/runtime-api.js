// Runs one function binary as Lambda does: the process polls the Lambda Runtime API for its next
// event and posts back the response, one invocation at a time. A process that exits is started
// again on the next invocation, like a new sandbox (a cold start).
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { randomUUID } from 'node:crypto';

const PREFIX = '/2018-06-01/runtime';

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
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${this.name} timed out after ${this.timeoutMs} ms`));
        // Lambda stops a timed-out sandbox; the next invocation starts a new one.
        const hung = this.process;
        this.process = null;
        if (hung) this.crashes += 1;
        this.waiting = null;
        hung?.kill('SIGKILL');
      }, this.timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.queue.push({ id, event });
      this.#dispatch();
    });
  }

  stop() {
    this.stopping = true;
    this.process?.kill('SIGTERM');
    this.server?.close();
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
    const relay = (stream) =>
      stream.on('data', (chunk) => {
        for (const line of chunk.toString().split('\n')) if (line.trim()) this.log(`[${this.name}] ${line}`);
      });
    relay(child.stdout);
    relay(child.stderr);
    child.on('exit', (code, signal) => {
      // A sandbox already replaced (after a timeout) takes nothing down with it.
      if (this.process !== child || this.stopping) return;
      this.process = null;
      this.waiting = null;
      this.crashes += 1;
      this.log(`[${this.name}] exited (${signal ?? code})`);
      for (const [id, call] of this.pending) {
        clearTimeout(call.timer);
        call.reject(new Error(`${this.name} exited while handling ${id}`));
      }
      this.pending.clear();
      this.queue = [];
    });
  }

  #dispatch() {
    if (!this.waiting || !this.queue.length) return;
    const { id, event } = this.queue.shift();
    const res = this.waiting;
    this.waiting = null;
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
        this.waiting = res;
        this.#dispatch();
        return;
      }
      const match = path.match(/^\/2018-06-01\/runtime\/invocation\/([^/]+)\/(response|error)$/);
      if (req.method === 'POST' && match) {
        this.observe(match[2], { id: match[1] });
        const call = this.pending.get(match[1]);
        this.pending.delete(match[1]);
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
