// The cold-start benchmark's driver (scripts/bench starts it; see docs/performance.md).
//
// Each function binary runs as its own process under the local gateway's Lambda Runtime API
// emulator, against DynamoDB Local and the Nango emulator on loopback, with the events AWS would
// send. One round = one cold start of every function (the floor first), then warm invokes; rounds
// interleave the functions so that they all see the same machine. Prints one table.
//
// Environment (scripts/bench sets it): FUNCTIONS_DIR (the x86_64 release binaries), ARM64_DIR
// (optional: <dir>/<name>/bootstrap, as cargo-lambda writes them), AWS_ENDPOINT_URL_DYNAMODB,
// CONNECTIONS_TABLE, RATE_LIMIT_TABLE, NANGO_EMULATOR (the emulator's directory).
import { spawn, execFileSync } from 'node:child_process';
import { createHmac, randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LambdaFunction } from '../infra/local-gateway/src/runtime-api.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const fixtures = join(repo, 'shared', 'tests', 'fixtures');
const FLOOR = 'bench-floor';
// The floor plus one PutItem through the functions' AWS SDK configuration: the least any function
// that stores a webhook through the SDK can cost. Run whenever webhook-receiver is.
const PUT_ITEM_FLOOR = 'bench-floor-put-item';
// The floor plus one JSON POST to Nango's /connect/sessions over the functions' HTTP stack: the
// least a function that calls Nango can cost. Run whenever create-session is.
const POST_FLOOR = 'bench-floor-post';
const ALL = ['create-session', 'reconnect-session', 'list-connections', 'delete-connection', 'webhook-receiver'];

function parseArgs(argv) {
  const options = { rounds: 20, invokes: 200, functions: ALL };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split(/=(.*)/s, 2);
    const value = () => inline ?? argv[++i];
    if (flag === '--rounds') options.rounds = Number(value());
    else if (flag === '--invokes') options.invokes = Number(value());
    else if (flag === '--functions') options.functions = value().split(',').map((f) => f.trim()).filter(Boolean);
    else throw new Error(`unknown argument ${argv[i]}`);
  }
  for (const name of options.functions) if (!ALL.includes(name)) throw new Error(`unknown function ${name} (one of ${ALL.join(', ')})`);
  if (!(options.rounds >= 1 && options.invokes >= 1)) throw new Error('--rounds and --invokes must be at least 1');
  return options;
}

const now = () => Number(process.hrtime.bigint()) / 1e6; // ms

// On-CPU time of every thread of the process, in ms: the scheduler's nanosecond count
// (/proc/<pid>/task/*/schedstat), i.e. utime + stime without /proc/<pid>/stat's 10 ms ticks.
function cpuMs(pid) {
  let ns = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
  }
  return ns / 1e6;
}

// utime + stime from /proc/<pid>/stat, in ms (10 ms resolution): the cross-check of cpuMs.
function statCpuMs(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

function peakRssKiB(pid) {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmHWM:'));
  return Number(line.split(/\s+/)[1]);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function waitFor(url, seconds) {
  const until = Date.now() + seconds * 1000;
  for (;;) {
    try {
      await fetch(url);
      return;
    } catch (err) {
      if (Date.now() > until) throw new Error(`nothing answered at ${url}: ${err.message}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

// --- the Nango emulator, and the one connection that reconnect-session asks about -------------

async function startNango() {
  const config = JSON.parse(readFileSync(join(process.env.NANGO_EMULATOR, 'emulator.config.json'), 'utf8'));
  const webhooks = [];
  const sink = (await import('node:http')).createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      webhooks.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(200).end('{}');
    });
  });
  await new Promise((r) => sink.listen(0, '127.0.0.1', r));
  const port = await freePort();
  const child = spawn(process.execPath, ['src/server.js', '--port', String(port)], {
    cwd: process.env.NANGO_EMULATOR,
    env: { ...process.env, NANGO_EMULATOR_WEBHOOK_URLS: `http://127.0.0.1:${sink.address().port}/webhooks` },
    stdio: 'ignore',
  });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(`${url}/`, 30);
  return {
    url,
    secretKey: config.secretKey,
    signingKey: config.webhookSigningKey,
    webhooks,
    stop() {
      child.kill('SIGTERM');
      sink.close();
    },
  };
}

// Creates a connection the way a user would (Connect session, then the API key form), and returns
// the auth webhook Nango sends about it.
async function connectInNango(nango, claims) {
  const session = await fetch(`${nango.url}/connect/sessions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${nango.secretKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      tags: { end_user_id: claims.sub, end_user_email: claims.email, organization_id: claims.org_id },
      allowed_integrations: ['exa'],
    }),
  }).then((r) => r.json());
  const before = nango.webhooks.length;
  const auth = await fetch(`${nango.url}/api-auth/api-key/exa?connect_session_token=${session.data.token}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ apiKey: 'bench-api-key' }),
  });
  if (!auth.ok) throw new Error(`the Nango emulator refused the connection: ${auth.status} ${await auth.text()}`);
  for (let i = 0; i < 100 && nango.webhooks.length === before; i++) await new Promise((r) => setTimeout(r, 20));
  const webhook = nango.webhooks[before];
  if (!webhook) throw new Error('the Nango emulator sent no webhook');
  return webhook;
}

// --- events ---------------------------------------------------------------------------------------

const fixture = (name) => JSON.parse(readFileSync(join(fixtures, name), 'utf8'));

function apiEvent(template, body) {
  const event = structuredClone(template);
  event.requestContext.requestId = randomUUID();
  event.requestContext.timeEpoch = Date.now();
  if (body !== undefined) {
    event.body = body;
    event.headers['content-length'] = String(Buffer.byteLength(body));
  }
  return event;
}

// A function URL event carrying a webhook signed as Nango signs it.
function webhookEvent(template, body, signingKey) {
  const event = apiEvent(template, body);
  for (const name of Object.keys(event.headers)) if (name.toLowerCase().startsWith('x-nango-')) delete event.headers[name];
  event.headers['x-nango-hmac-sha256'] = createHmac('sha256', signingKey).update(body).digest('hex');
  return event;
}

// A new connection's auth webhook for an end user of its own, so the list that list-connections
// reads stays the same size whatever the webhook receiver stored.
/** Connections Nango has (made silently in the emulator), for the new-connection webhooks: the
 * receiver confirms a creation with Nango's exact lookup, so a webhook for an id Nango does not
 * have would time its lag waits, not its work. */
const nangoConnections = [];

async function makeConnectionsInNango(nango, count) {
  const tags = { end_user_id: 'bench-webhooks', organization_id: 'bench-org' };
  for (let made = 0; made < count; made += 1000) {
    const answer = await fetch(`${nango.url}/_emulator/connections`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ connections: [{ integration: 'exa', tags, count: Math.min(1000, count - made) }] }),
    });
    if (!answer.ok) throw new Error(`the Nango emulator made no connections: ${answer.status} ${await answer.text()}`);
    for (const row of (await answer.json()).connections) nangoConnections.push(row);
  }
}

function newConnectionWebhook(template) {
  const body = JSON.parse(template.body);
  const row = nangoConnections.pop();
  if (!row) throw new Error('out of connections made in Nango');
  body.connectionId = row.connection_id;
  body.providerConfigKey = row.provider_config_key;
  body.endUser = { ...body.endUser, endUserId: 'bench-webhooks' };
  body.tags = row.tags;
  return JSON.stringify(body);
}

// --- one cold start and its warm invokes ----------------------------------------------------------

async function coldStart({ name, binary, env, event, expect, invokes }) {
  const marks = {};
  let pid = null;
  let cpuAtFirstPoll = null;
  let cpuAtFirstResponse = null;
  const logs = [];
  const fn = new LambdaFunction({
    name,
    binary,
    env,
    timeoutMs: 20_000,
    log: (line) => logs.push(line),
    observe: (what, detail) => {
      if (what === 'spawn') pid = detail.pid;
      if (what === 'next' && marks.firstPoll === undefined) {
        marks.firstPoll = now();
        cpuAtFirstPoll = cpuMs(pid);
      }
      if ((what === 'response' || what === 'error') && marks.firstResponse === undefined) {
        marks.firstResponse = now();
        cpuAtFirstResponse = cpuMs(pid);
      }
    },
  });
  await fn.listen();
  const exited = () => new Promise((resolve) => (fn.process ? fn.process.once('exit', resolve) : resolve()));
  try {
    const spawned = now();
    fn.start();
    const check = (response, i) => {
      if (response.statusCode !== expect) {
        throw new Error(`${name} answered invoke ${i} with ${response.statusCode}: ${response.body}\n${logs.slice(-5).join('\n')}`);
      }
    };
    check(await fn.invoke(event(0)), 0);
    const warm = [];
    const cpuBefore = cpuMs(pid);
    const statBefore = statCpuMs(pid);
    for (let i = 1; i <= invokes; i++) {
      const started = now();
      const response = await fn.invoke(event(i));
      warm.push(now() - started);
      check(response, i);
    }
    const cpuWarm = (cpuMs(pid) - cpuBefore) / invokes;
    const statWarm = (statCpuMs(pid) - statBefore) / invokes;
    const rss = peakRssKiB(pid);
    warm.sort((a, b) => a - b);
    const done = exited();
    fn.stop();
    await done;
    return {
      init: marks.firstPoll - spawned,
      initCpu: cpuAtFirstPoll,
      firstInvoke: marks.firstResponse - marks.firstPoll,
      execToFirstResponse: marks.firstResponse - spawned,
      cpuToFirstResponse: cpuAtFirstResponse,
      warmP50: percentile(warm, 0.5),
      warmP99: percentile(warm, 0.99),
      cpuPerWarmInvoke: cpuWarm,
      statCpuPerWarmInvoke: statWarm,
      peakRssMiB: rss / 1024,
    };
  } catch (err) {
    fn.stop();
    throw err;
  }
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)];
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

// --- sizes -------------------------------------------------------------------------------------------

function zippedBytes(file) {
  const dir = mkdtempSync(join(tmpdir(), 'bench-zip-'));
  try {
    // As the deployment package: the one file, named bootstrap, at the highest compression.
    const zip = join(dir, 'package.zip');
    execFileSync('zip', ['-9', '-q', '-j', zip, file]);
    return statSync(zip).size;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function sizes(name) {
  const x86 = join(process.env.FUNCTIONS_DIR, name);
  const arm = process.env.ARM64_DIR ? join(process.env.ARM64_DIR, name, 'bootstrap') : null;
  return {
    x86: statSync(x86).size,
    x86Zip: zippedBytes(x86),
    arm: arm && existsSync(arm) ? statSync(arm).size : null,
    armZip: arm && existsSync(arm) ? zippedBytes(arm) : null,
  };
}

// --- the table ------------------------------------------------------------------------------------

const COLUMNS = [
  ['init', 'init ms (spawn→1st poll)'],
  ['initCpu', 'init CPU ms'],
  ['firstInvoke', '1st invoke ms'],
  ['execToFirstResponse', 'exec→1st response ms'],
  ['cpuToFirstResponse', 'CPU to 1st response ms'],
  ['warmP50', 'warm p50 ms'],
  ['warmP99', 'warm p99 ms'],
  ['cpuPerWarmInvoke', 'CPU/warm invoke ms'],
  ['peakRssMiB', 'peak RSS MiB (VmHWM)'],
];

function fmt(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return '–';
  return value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2);
}

const mb = (bytes) => (bytes === null ? '–' : (bytes / 1e6).toFixed(2));

function printTable(options, results, sizeOf) {
  const rows = [];
  const header = ['function', 'x86_64 MB', 'x86_64 zip -9 MB', 'arm64 MB', 'arm64 zip -9 MB', ...COLUMNS.map((c) => c[1])];
  for (const [name, rounds] of Object.entries(results)) {
    const size = sizeOf[name];
    const row = [name, mb(size.x86), mb(size.x86Zip), mb(size.arm), mb(size.armZip)];
    for (const [key] of COLUMNS) {
      const values = rounds.map((r) => r[key]);
      row.push(`${fmt(median(values))} (${fmt(Math.min(...values))}–${fmt(Math.max(...values))})`);
    }
    rows.push(row);
  }
  // One row per function: its medians divided by the base's (the arm64 zip size too, when known).
  const ratio = (name, base, label) => {
    const sizes = sizeOf[name].armZip && sizeOf[base].armZip ? `${(sizeOf[name].armZip / sizeOf[base].armZip).toFixed(2)}×` : '';
    const cells = COLUMNS.map(([key]) => {
      const of = (rounds) => median(rounds.map((r) => r[key]));
      return `${(of(results[name]) / of(results[base])).toFixed(2)}×`;
    });
    return [`${name} ÷ ${label}`, '', '', '', sizes, ...cells];
  };
  const ratios = Object.keys(results)
    .filter((name) => name !== FLOOR)
    .map((name) => ratio(name, FLOOR, 'floor'));
  for (const [name, yardstick] of [['create-session', POST_FLOOR], ['webhook-receiver', PUT_ITEM_FLOOR]]) {
    if (results[name] && results[yardstick]) ratios.push(ratio(name, yardstick, yardstick));
  }
  const all = [header, ...rows, ...ratios];
  const cpuStat = Object.entries(results)
    .map(([name, rounds]) => `${name} ${fmt(median(rounds.map((r) => r.statCpuPerWarmInvoke)))}`)
    .join(', ');
  console.log(
    `\n${options.rounds} cold starts × ${options.invokes} warm invokes each; medians (min–max over the cold starts). ` +
      `warm p50/p99 are per cold start; CPU = on-CPU time of all the process's threads.\n`,
  );
  console.log(`| ${header.join(' | ')} |`);
  console.log(`|${header.map(() => '---').join('|')}|`);
  for (const row of all.slice(1)) console.log(`| ${row.join(' | ')} |`);
  console.log(`\nCross-check, utime+stime from /proc/<pid>/stat (10 ms ticks), CPU per warm invoke in ms: ${cpuStat}`);
  if (!sizeOf[FLOOR].arm) console.log('arm64 sizes: none (scripts/bench --arm64 builds them with cargo-lambda)');
}

// --- main ------------------------------------------------------------------------------------------

async function main() {
  const options = parseArgs(process.argv.slice(2));
  const nango = await startNango();
  try {
    const env = {
      NANGO_HOST: nango.url,
      NANGO_SECRET_KEY: nango.secretKey,
      NANGO_WEBHOOK_SIGNING_KEY: nango.signingKey,
      CONNECTIONS_TABLE: process.env.CONNECTIONS_TABLE,
      AWS_ENDPOINT_URL_DYNAMODB: process.env.AWS_ENDPOINT_URL_DYNAMODB,
      // Every Nango-calling request takes from the caller's bucket, the organization's and the
      // Nango budget, as deployed; the rates are high enough that one benchmark user is never
      // refused, so every invoke measures the admitted path (one UpdateItem per idle bucket).
      RATE_LIMIT_TABLE: process.env.RATE_LIMIT_TABLE,
      USER_REQUESTS_PER_MINUTE: '100000',
      USER_BURST: '1000',
      ORGANIZATION_REQUESTS_PER_MINUTE: '100000',
      ORGANIZATION_BURST: '1000',
      NANGO_REQUESTS_PER_MINUTE: '100000',
      NANGO_BURST: '1000',
      // The receiver needs a bus; auth webhooks never publish from it (their events come from the
      // table's stream), so nothing listens there.
      EVENT_BUS_NAME: 'bench',
      AWS_ENDPOINT_URL_EVENTBRIDGE: 'http://127.0.0.1:1',
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'bench',
      AWS_SECRET_ACCESS_KEY: 'bench',
    };
    const binary = (name) => join(process.env.FUNCTIONS_DIR, name);
    const sessions = fixture('apigw-v2-post-sessions.json');
    const reconnect = fixture('apigw-v2-post-sessions-reconnect.json');
    const list = fixture('apigw-v2-get-connections.json');
    const remove = fixture('apigw-v2-delete-connection.json');
    const webhook = fixture('function-url-webhook.json');

    // The caller's connection, made in Nango and delivered to DynamoDB by the webhook receiver
    // itself, so that reconnect-session and list-connections find it in both.
    let connectionId = null;
    if (options.functions.some((name) => name === 'reconnect-session' || name === 'list-connections')) {
      const claims = sessions.requestContext.authorizer.jwt.claims;
      const delivered = await connectInNango(nango, claims);
      connectionId = JSON.parse(delivered.body).connectionId;
      await coldStart({
        name: 'webhook-receiver',
        binary: binary('webhook-receiver'),
        env,
        event: () => webhookEvent(webhook, delivered.body, nango.signingKey),
        expect: 200,
        invokes: 1,
      });
    }

    const benchmarks = {
      [FLOOR]: { event: () => apiEvent(sessions), expect: 200 },
      'create-session': { event: () => apiEvent(sessions), expect: 201 },
      'reconnect-session': { event: () => apiEvent(reconnect, JSON.stringify({ connectionId })), expect: 201 },
      'list-connections': { event: () => apiEvent(list), expect: 200 },
      // A connection the caller does not have: one GetItem, then 404 without a call to Nango.
      'delete-connection': { event: () => apiEvent(remove), expect: 404 },
      'webhook-receiver': { event: () => webhookEvent(webhook, newConnectionWebhook(webhook), nango.signingKey), expect: 200 },
      [PUT_ITEM_FLOOR]: { event: () => webhookEvent(webhook, newConnectionWebhook(webhook), nango.signingKey), expect: 200 },
      [POST_FLOOR]: { event: () => apiEvent(sessions), expect: 200 },
    };
    const yardsticks = [
      ...(options.functions.includes('create-session') ? [POST_FLOOR] : []),
      ...(options.functions.includes('webhook-receiver') ? [PUT_ITEM_FLOOR] : []),
    ];
    const names = [FLOOR, ...yardsticks, ...options.functions];
    const newConnectionEvents = names.filter((name) => name === 'webhook-receiver' || name === PUT_ITEM_FLOOR).length;
    await makeConnectionsInNango(nango, newConnectionEvents * options.rounds * (options.invokes + 1));
    const results = Object.fromEntries(names.map((name) => [name, []]));
    for (let round = 1; round <= options.rounds; round++) {
      for (const name of names) {
        results[name].push(await coldStart({ name, binary: binary(name), env, invokes: options.invokes, ...benchmarks[name] }));
      }
      process.stderr.write(`\rround ${round}/${options.rounds}`);
    }
    process.stderr.write('\n');
    const sizeOf = Object.fromEntries(names.map((name) => [name, sizes(name)]));
    printTable(options, results, sizeOf);
  } finally {
    nango.stop();
  }
}

main().catch((err) => {
  console.error(err.stack ?? String(err));
  process.exit(1);
});
