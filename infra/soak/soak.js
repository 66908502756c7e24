// The soak driver (scripts/soak starts the stack and runs this): end users across organizations
// authorize connections through the real API and the emulator's API-key flow while the emulator
// duplicates, reorders and drops webhooks and answers the session endpoints with faults, DynamoDB
// Local is stopped and started again, and function processes are killed mid-invocation; a share
// of the connections reconnect, fail a refresh, recover and are deleted. At the end the store is
// compared with the emulator's truth, connection by connection. Exit 1 when anything differs.
//
//   STACK_URL, NANGO_HOST, DYNAMODB_URL, CONNECTIONS_TABLE   the stack (set by scripts/soak)
//   SOAK_STACK_PID       scripts/dev's process: only its descendants are stopped or killed
//   SOAK_DYNAMODB_LOG    where the restarted DynamoDB Local writes its output
//   SOAK_DYNAMODB_PID_FILE  the restarted DynamoDB Local's pid, for scripts/soak to kill at exit
//   SOAK_CONNECTIONS (200), SOAK_ORGS (10), SOAK_CONCURRENCY (8), SOAK_SEED (1), SOAK_BUSY_SECONDS (60)
//
// The gateway runs up to SANDBOXES_PER_FUNCTION sandboxes per function (scripts/soak passes it);
// at a concurrency above that, some requests are throttled as Lambda throttles them (our API:
// 500, retried by its client here; the webhook receiver's function URL: 429, which Nango never
// retries, so those webhooks are lost and only reconciliation brings their changes in).
import { execFileSync, spawn } from 'node:child_process';
import { openSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';

const stack = process.env.STACK_URL;
const nangoHost = process.env.NANGO_HOST;
const dynamodb = process.env.DYNAMODB_URL;
const table = process.env.CONNECTIONS_TABLE ?? 'nango-connections';
const total = Number(process.env.SOAK_CONNECTIONS ?? 200);
const orgs = Number(process.env.SOAK_ORGS ?? 10);
const concurrency = Number(process.env.SOAK_CONCURRENCY ?? 8);
const seed = Number(process.env.SOAK_SEED ?? 1);
const stackPid = Number(process.env.SOAK_STACK_PID);
const integration = 'github';
// Nango's retry waits, shortened so that a retried webhook lands within the run; an outage of
// DynamoDB longer than both together makes a webhook sent at its start exhaust its retries.
const retryDelaysMs = [500, 1000];
const OUTAGE_MS = 3000;

const latencies = new Map(); // endpoint -> [ms]
const retries = new Map(); // endpoint -> retried answers (429/5xx)
const faults = [];
// Our API's 5xx answers as they come ({endpoint, status, body, at}): which one a kill caused.
// Throttles (the gateway says so in a local-only header) are counted apart, by endpoint.
const serverErrors = [];
const throttled = new Map();
// The soak's users refused 429 rate_limited (their own share used up): must stay 0, since each makes
// a few requests, far within the share; only the busy user below meets it.
const rateLimited = new Map(); // endpoint -> answers

async function call(url, { method = 'GET', token, body, endpoint } = {}) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const started = performance.now();
  const response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  if (endpoint) {
    if (!latencies.has(endpoint)) latencies.set(endpoint, []);
    latencies.get(endpoint).push(performance.now() - started);
  }
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = text;
  }
  if (endpoint && response.headers.get('x-local-gateway-throttled')) throttled.set(endpoint, (throttled.get(endpoint) ?? 0) + 1);
  else if (endpoint && response.status >= 500) serverErrors.push({ endpoint, status: response.status, body: parsed, at: performance.now() });
  return { status: response.status, body: parsed };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const soakStartedAt = performance.now();
/** A line on stderr, so that a long run shows where it is. */
const progress = (what) => console.error(`  [${((performance.now() - soakStartedAt) / 1000).toFixed(0)} s] ${what}`);

/** Our API, retried later on 429/5xx as a client would (the API answers 503 when Nango fails). */
async function api(method, path, token, body, expected) {
  const endpoint = `${method} ${path.replace(/\/connections\/[^/]+$/, '/connections/{id}')}`;
  for (let attempt = 0; attempt < 30; attempt++) {
    const answer = await call(`${stack}${path}`, { method, token, body, endpoint });
    if (answer.status === expected) return answer;
    if (answer.status === 429 && answer.body?.error?.code === 'rate_limited') {
      rateLimited.set(endpoint, (rateLimited.get(endpoint) ?? 0) + 1);
    }
    if (answer.status === 429 || answer.status >= 500) {
      retries.set(endpoint, (retries.get(endpoint) ?? 0) + 1);
      await sleep(200 + 100 * attempt);
      continue;
    }
    throw new Error(`${endpoint}: ${answer.status} ${JSON.stringify(answer.body)}`);
  }
  throw new Error(`${endpoint}: still failing after 30 attempts`);
}

// One busy user, sending POST /sessions 20 times a second while everyone else authorizes (issue 18
// §1): held to their share (UserRequestsPerMinute, UserBurst), while no other user meets theirs.
const BUSY_RATE_PER_SECOND = 20;
const BUSY_FOR_MS = Number(process.env.SOAK_BUSY_SECONDS ?? 60) * 1000;

async function busyUser() {
  const claims = { sub: `soak-busy-${seed}`, email: 'busy@example.com', name: 'Busy User', org_id: `soak-busy-org-${seed}` };
  const token = (await api('POST', '/dev/token', undefined, claims, 200)).body.token;
  const counts = { admitted: 0, limited: 0, other: 0, startedAt: performance.now(), endedAt: 0 };
  const stopAt = counts.startedAt + BUSY_FOR_MS;
  const inFlight = new Set();
  for (let n = 0; performance.now() < stopAt; n++) {
    const request = call(`${stack}/sessions`, { method: 'POST', token, body: {} }).then((answer) => {
      if (answer.status === 201) counts.admitted++;
      else if (answer.status === 429 && answer.body?.error?.code === 'rate_limited') counts.limited++;
      else counts.other++;
    });
    inFlight.add(request);
    request.finally(() => inFlight.delete(request));
    // The next one on schedule, whatever this one takes.
    const next = counts.startedAt + ((n + 1) * 1000) / BUSY_RATE_PER_SECOND;
    await sleep(Math.max(0, next - performance.now()));
  }
  await Promise.all(inFlight);
  counts.endedAt = performance.now();
  return counts;
}

async function emulator(method, path, body) {
  const answer = await call(`${nangoHost}${path}`, { method, body });
  if (answer.status >= 300) throw new Error(`emulator ${method} ${path}: ${answer.status} ${JSON.stringify(answer.body)}`);
  return answer.body;
}

/** What the frontend SDK sends for nango.auth(integration, { credentials: { apiKey } }). */
async function authorize(sessionToken) {
  const url = `${nangoHost}/api-auth/api-key/${integration}?connect_session_token=${sessionToken}`;
  const answer = await call(url, { method: 'POST', body: { apiKey: 'soak-key' }, endpoint: 'nango api-auth' });
  if (answer.status !== 200) throw new Error(`api-auth: ${answer.status} ${JSON.stringify(answer.body)}`);
  return answer.body.connectionId;
}

async function pool(items, worker) {
  let next = 0;
  const runners = Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) {
      const index = next++;
      await worker(items[index], index);
    }
  });
  await Promise.all(runners);
}

// Seeded choices, so that the same seed picks the same users for each fate.
let state = seed >>> 0 || 1;
function random() {
  state ^= state << 13; state >>>= 0;
  state ^= state >>> 17;
  state ^= state << 5; state >>>= 0;
  return state / 2 ** 32;
}

/** Every item of the table, or with `count` only how many there are. */
async function scanTable({ count = false } = {}) {
  const items = [];
  let counted = 0;
  let start;
  do {
    const response = await fetch(dynamodb, {
      method: 'POST',
      headers: {
        'x-amz-target': 'DynamoDB_20120810.Scan',
        'content-type': 'application/x-amz-json-1.0',
        authorization: 'AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0',
      },
      body: JSON.stringify({
        TableName: table, ConsistentRead: true, ...(count ? { Select: 'COUNT' } : {}), ...(start ? { ExclusiveStartKey: start } : {}),
      }),
    });
    const page = await response.json();
    if (response.status !== 200) throw new Error(`scan: ${JSON.stringify(page)}`);
    if (count) counted += page.Count;
    else items.push(...page.Items);
    start = page.LastEvaluatedKey;
  } while (start);
  return count ? counted : items.filter((item) => item.connectionId && item.status);
}

/** Until no webhook is pending. Fails only when deliveries stop making progress (no attempt
 * finishes for a minute), so that it holds at any size of run. */
async function settle() {
  let attempts = -1;
  let progressAt = performance.now();
  for (;;) {
    const stats = await emulator('GET', '/_emulator/webhooks/stats');
    if (stats.pending === 0) return stats;
    if (stats.attempts !== attempts) {
      attempts = stats.attempts;
      progressAt = performance.now();
    } else if (performance.now() - progressAt > 60_000) {
      throw new Error(`${stats.pending} webhooks still pending, and no delivery attempt finished for 60 s`);
    }
    await sleep(200);
  }
}

function percentile(values, p) {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function main() {
  const startedAt = performance.now();
  // Webhooks: every one sent twice more, shuffled within 300 ms, at most 8 POSTs in flight.
  await emulator('POST', '/_emulator/config', { retryDelaysMs });
  await emulator('POST', '/_emulator/webhooks/delivery', { duplicates: 2, reorderWindowMs: 300, concurrency: 8, seed });

  const users = Array.from({ length: total }, (_, i) => ({
    sub: `soak-user-${seed}-${i}`,
    email: `soak-${i}@example.com`,
    name: `Soak User ${i}`,
    org_id: `soak-org-${seed}-${i % orgs}`,
  }));
  const dropFrom = Math.floor(total * 0.3);
  const dropCount = Math.max(1, Math.floor(total * 0.05));
  const outageAt = Math.floor(total * 0.4);
  const faultFrom = Math.floor(total * 0.5);
  const receiverKillAt = Math.floor(total * 0.6);
  const killAt = Math.floor(total * 0.7);

  // Phase 1: every user mints a token, creates a session and authorizes a connection, while one
  // busy user floods POST /sessions for a minute (SOAK_BUSY_SECONDS), before the DynamoDB outage.
  const busy = busyUser();
  const connections = [];
  let outageDone = Promise.resolve();
  await pool(users, async (user, index) => {
    // The busy user floods during the first part only: while DynamoDB is away the buckets cannot
    // be read and every request is let through (the limits fail open, by design), and the faults
    // and kills that follow are each aimed at one user's request.
    if (index >= outageAt) await busy;
    if (index === outageAt) {
      // In the background: the pool goes on authorizing while DynamoDB is away.
      outageDone = dynamodbOutage();
    }
    if (index === receiverKillAt) {
      // This user's own creation webhook is the invocation killed; after the outage, not during it.
      await outageDone.catch(() => {});
      connections.push(await killReceiverMidInvocation(user));
      return;
    }
    if (index === killAt) {
      connections.push(await killCreateSessionMidInvocation(user));
      return;
    }
    if (index === dropFrom) {
      // A batch of creation webhooks lost entirely: only reconciliation can find these.
      await emulator('POST', '/_emulator/webhooks/drop', { count: dropCount, operation: 'creation' });
      faults.push(`${dropCount} creation webhooks dropped`);
    }
    if (index === faultFrom) {
      await emulator('POST', '/_emulator/faults', { route: 'POST /connect/sessions', count: 5, status: 503 });
      await emulator('POST', '/_emulator/faults', { route: 'POST /connect/sessions', count: 5, status: 429, retryAfter: 1 });
      await emulator('POST', '/_emulator/faults', { route: 'POST /connect/sessions', count: 3, status: 500 });
      await emulator('POST', '/_emulator/faults', { route: 'POST /connect/sessions', count: 3, hangMs: 2000 });
      faults.push('POST /connect/sessions: 5x 503, 5x 429, 3x 500, 3x hang 2 s');
    }
    connections.push(await authorizeUser(user));
    if (connections.length % Math.max(1, Math.floor(total / 10)) === 0) progress(`${connections.length}/${total} authorized`);
  });
  await outageDone;
  const authorizedAt = performance.now();
  const busyCounts = await busy;

  // The dropped creations reach the store only through reconciliation, as in production when the
  // scheduled run comes round; the fates below need the store to know every connection.
  progress('waiting for the webhooks to settle');
  await settle();
  progress('reconciling');
  const midReconcile = await call(`${stack}/dev/reconcile`, { method: 'POST', endpoint: 'POST /dev/reconcile' });
  if (midReconcile.status !== 200) throw new Error(`reconcile: ${midReconcile.status} ${JSON.stringify(midReconcile.body)}`);

  // Phase 2: fates. A share reconnect, fail a refresh and recover (or stay failed), are deleted.
  const fates = { reconnected: 0, refreshFailed: 0, recovered: 0, deleted: 0 };
  await emulator('POST', '/_emulator/faults', { route: 'POST /connect/sessions/reconnect', count: 3, status: 503 });
  faults.push('POST /connect/sessions/reconnect: 3x 503');
  progress('phase 2: reconnect, refresh failures, deletes');
  await pool(connections, async (connection) => {
    const roll = random();
    if (roll < 0.15) {
      const session = await api('POST', '/sessions/reconnect', connection.token, { connectionId: connection.connectionId }, 201);
      await authorize(session.body.sessionToken);
      fates.reconnected++;
      connection.fate = 'reconnected';
    } else if (roll < 0.3) {
      await emulator('POST', `/_emulator/connections/${connection.connectionId}/refresh-failure`, {});
      fates.refreshFailed++;
      connection.fate = 'refresh failed';
      if (random() < 0.5) {
        await sleep(50);
        await emulator('POST', `/_emulator/connections/${connection.connectionId}/refresh-success`, {});
        fates.recovered++;
        connection.fate = 'refresh failed, recovered';
      }
    } else if (roll < 0.4) {
      // Only once the store has it: our DELETE answers 404 for a connection it does not know yet.
      for (let i = 0; i < 25; i++) {
        const answer = await call(`${stack}/connections/${connection.connectionId}`, {
          method: 'DELETE', token: connection.token, endpoint: 'DELETE /connections/{id}',
        });
        if (answer.status < 300) { fates.deleted++; connection.fate = 'deleted'; return; }
        if (answer.status === 404 || answer.status === 429 || answer.status >= 500) { await sleep(200); continue; }
        throw new Error(`DELETE: ${answer.status} ${JSON.stringify(answer.body)}`);
      }
      fates.deleteSkipped = (fates.deleteSkipped ?? 0) + 1;
    }
  });

  // Listing under load, for its latency.
  await pool(connections.slice(0, Math.min(connections.length, 100)), async (connection) => {
    await api('GET', '/connections', connection.token, undefined, 200);
  });

  progress('settling, reconciling and comparing');
  const stats = await settle();
  // What the webhooks alone made of the store (every one delivered, or dropped and then
  // reconciled in phase 1), before the last reconciliation corrects it.
  const beforeReconcile = await compare();
  const reconcile = await call(`${stack}/dev/reconcile`, { method: 'POST', endpoint: 'POST /dev/reconcile' });
  if (reconcile.status !== 200) throw new Error(`reconcile: ${reconcile.status} ${JSON.stringify(reconcile.body)}`);
  await settle();
  const finishedAt = performance.now();

  const { truth, lost, wrongOwner, wrongStatus } = await compare();
  const functions = (await call(`${stack}/dev/functions`)).body;

  const seconds = (finishedAt - startedAt) / 1000;
  const { outage, createSessionKill: kill, receiverKill: receiver } = report;
  // DynamoDB Local's own loss (items gone over its restart) would make the comparison meaningless.
  const emulatorLoss = outage.itemsAfter < outage.itemsBefore;
  const rows = [
    ['connections (Nango truth)', `${truth.length} (${truth.filter((c) => !c.deleted).length} live, ${truth.filter((c) => c.deleted).length} deleted)`],
    ['end users / organizations', `${users.length} / ${orgs}`],
    ['fates', `${fates.reconnected} reconnected, ${fates.refreshFailed} refresh failed (${fates.recovered} recovered), ${fates.deleted} deleted${fates.deleteSkipped ? `, ${fates.deleteSkipped} deletes given up` : ''}`],
    ['webhooks', `${stats.events} events, ${stats.deliveries} deliveries (${stats.duplicates} duplicates), ${stats.delivered} delivered, ${stats.retries} retries, ${stats.failed} failed, ${stats.dropped} dropped, max ${stats.maxInFlight} in flight`],
    ['webhook attempts answered', Object.entries(stats.answers).map(([answer, n]) => `${answer}: ${n}`).join(', ')],
    ['reconcile after the authorizations', JSON.stringify(midReconcile.body)],
    ['before the last reconcile', `${beforeReconcile.lost.length} lost, ${beforeReconcile.wrongOwner.length} wrong owner, `
      + `${beforeReconcile.wrongStatus.length} wrong status${describeFates(beforeReconcile.wrongStatus, connections)}`],
    ['reconcile at the end', JSON.stringify(reconcile.body)],
    ['faults injected', faults.join('; ')],
    ['DynamoDB outage', `stopped ${outage.seconds.toFixed(1)} s (SIGTERM to answering again; port refusing ${outage.refusingSeconds.toFixed(1)} s), `
      + `pid ${outage.pid} -> ${outage.newPid}, items ${outage.itemsBefore} before / ${outage.itemsAfter} after the restart, `
      + `webhook attempts answered ${describeAnswers(outage.answers)}, ${outage.failed} deliveries failed (retries exhausted)`],
    ['create-session killed', `pid ${kill.pid} mid-invocation: the request it held got ${kill.status} ${JSON.stringify(kill.body)}, retried by its client; `
      + `sandbox starts ${kill.before.starts} -> ${kill.after.starts}, crashes ${kill.before.crashes} -> ${kill.after.crashes}`],
    ['webhook-receiver killed', `pid ${receiver.pid} inside a DynamoDB call (DynamoDB paused ${receiver.pausedMs.toFixed(0)} ms): attempts answered `
      + `${describeAnswers(receiver.answers)}, ${receiver.failed} deliveries failed; `
      + `sandbox starts ${receiver.before.starts} -> ${receiver.after.starts}, crashes ${receiver.before.crashes} -> ${receiver.after.crashes}`],
    ['fairness: the busy user', `${busyCounts.admitted} admitted, ${busyCounts.limited} refused 429 rate_limited, ${busyCounts.other} other, `
      + `in ${((busyCounts.endedAt - busyCounts.startedAt) / 1000).toFixed(1)} s at ${BUSY_RATE_PER_SECOND}/s (share: ${busyShare(busyCounts)})`],
    ['fairness: everyone else refused rate_limited', [...rateLimited].map(([k, v]) => `${k}: ${v}`).join(', ') || '0'],
    ['API retries (429/5xx seen)', [...retries].map(([k, v]) => `${k}: ${v}`).join(', ') || 'none'],
    ['of which throttled (all sandboxes busy)', [...throttled].map(([k, v]) => `${k}: ${v}`).join(', ') || 'none'],
    ['webhooks throttled (429, not retried by Nango)', `${stats.answers['429'] ?? 0}`],
    ['function sandboxes (starts/crashes/throttles, max)', Object.entries(functions).map(([name, fn]) => `${name} ${fn.starts}/${fn.crashes}/${fn.throttles ?? 0}`).join(', ')
      + ` (max ${Object.values(functions)[0]?.max ?? 1} each)`],
    ['duration', `${seconds.toFixed(1)} s (authorizations: ${((authorizedAt - startedAt) / 1000).toFixed(1)} s)`],
    ['throughput', `${(truth.length / ((authorizedAt - startedAt) / 1000)).toFixed(1)} authorizations/s, ${(stats.deliveries / seconds).toFixed(1)} webhook deliveries/s`],
  ];
  for (const [endpoint, values] of [...latencies].sort()) {
    rows.push([`latency ${endpoint}`, `p50 ${percentile(values, 50).toFixed(0)} ms, p99 ${percentile(values, 99).toFixed(0)} ms (n=${values.length})`]);
  }
  const list = (differences) => (differences.length ? `${differences.length}: ${differences.map((d) => d.text).join(', ')}` : '0');
  rows.push(['lost', list(lost)]);
  rows.push(['wrong owner', list(wrongOwner)]);
  rows.push(['wrong status', list(wrongStatus)]);
  if (emulatorLoss) rows.push(['DynamoDB Local lost items over its restart', `${outage.itemsBefore - outage.itemsAfter}`]);
  const width = Math.max(...rows.map(([k]) => k.length));
  console.log('\nsoak');
  for (const [k, v] of rows) console.log(`  ${k.padEnd(width)}  ${v}`);
  // Exit now: the DynamoDB Local this soak started again would keep the process alive.
  const unfair = rateLimited.size > 0 || busyCounts.admitted > busyShare(busyCounts) || busyCounts.limited === 0;
  if (unfair) console.log('  UNFAIR: the busy user got more than their share, or someone else was refused theirs');
  process.exit(lost.length || wrongOwner.length || wrongStatus.length || emulatorLoss || unfair ? 1 : 0);
}

/** The most the busy user may be admitted: a burst, then the rate (scripts/soak passes both). */
function busyShare({ startedAt, endedAt }) {
  const perMinute = Number(process.env.USER_REQUESTS_PER_MINUTE ?? 20);
  const burst = Number(process.env.USER_BURST ?? 10);
  return burst + Math.ceil(((endedAt - startedAt) / 60_000) * perMinute) + 1;
}

async function authorizeUser(user) {
  const token = (await api('POST', '/dev/token', undefined, user, 200)).body.token;
  const session = await api('POST', '/sessions', token, { allowedIntegrations: [integration] }, 201);
  const connectionId = await authorize(session.body.sessionToken);
  return { connectionId, user, token };
}

// ---------- the stack's processes, stopped and killed

function descendsFrom(pid, ancestor) {
  for (let current = pid, hops = 0; current > 1 && hops < 20; hops++) {
    if (current === ancestor) return true;
    try {
      // /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may hold spaces, so read after the ')'.
      const stat = readFileSync(`/proc/${current}/stat`, 'utf8');
      current = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    } catch {
      return false;
    }
  }
  return false;
}

/** Alive and not yet a zombie waiting for its parent. */
function alive(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

async function waitFor(what, condition, ms) {
  const deadline = performance.now() + ms;
  while (!(await condition())) {
    if (performance.now() > deadline) throw new Error(`${what}: still not after ${ms / 1000} s`);
    await sleep(50);
  }
}

const functionsNow = async () => (await call(`${stack}/dev/functions`)).body;

/** A function's process, only if it belongs to this soak's stack: another stack on the machine
 * runs the same binaries. */
function ownFunctionPid(status, name) {
  if (!status.pid || !descendsFrom(status.pid, stackPid)) throw new Error(`${name}: no process of this stack (${JSON.stringify(status)})`);
  return status.pid;
}

const dynamodbPort = new URL(dynamodb).port;
// The DynamoDB Local this soak started again (the stack's own one is stopped), and the one it
// holds paused: at exit, whatever ends the soak, the first is stopped and the second resumed.
let dynamodbRestarted = null;
let dynamodbPaused = null;
process.on('exit', () => {
  if (dynamodbPaused) try { process.kill(dynamodbPaused, 'SIGCONT'); } catch { /* gone already */ }
  if (dynamodbRestarted && dynamodbRestarted.exitCode === null && dynamodbRestarted.signalCode === null) dynamodbRestarted.kill('SIGTERM');
});
process.on('SIGINT', () => process.exit(130));
process.on('SIGTERM', () => process.exit(143));

function dynamodbPid() {
  if (dynamodbRestarted) return dynamodbRestarted.pid;
  let pids = [];
  try {
    // pgrep exits 1 when nothing matches.
    pids = execFileSync('pgrep', ['-f', `DynamoDBLocal\\.jar -port ${dynamodbPort}( |$)`]).toString().trim().split('\n').map(Number);
  } catch { /* none */ }
  pids = pids.filter((pid) => descendsFrom(pid, stackPid));
  if (pids.length !== 1) throw new Error(`expected this stack's one DynamoDB Local on port ${dynamodbPort}, found ${pids.length}`);
  return pids[0];
}

async function dynamodbAnswers() {
  try {
    await fetch(dynamodb, { signal: AbortSignal.timeout(1000) });
    return true;
  } catch {
    return false;
  }
}

const report = { outage: null, createSessionKill: null, receiverKill: null };

/** The store against the emulator's truth, connection by connection: owner (from the first
 * tags), status (active / error / deleted). */
async function compare() {
  const truth = (await emulator('GET', '/_emulator/connections')).connections;
  const stored = new Map((await scanTable()).map((item) => [item.connectionId.S, item]));
  const lost = [], wrongOwner = [], wrongStatus = [];
  for (const connection of truth) {
    const id = connection.connection_id;
    const item = stored.get(id);
    if (!item) { lost.push({ id, text: id }); continue; }
    const owner = connection.first_tags?.end_user_id ?? null;
    if ((item.endUserId?.S ?? null) !== owner || (item.organizationId?.S ?? null) !== (connection.first_tags?.organization_id ?? null)) {
      wrongOwner.push({ id, text: `${id} (store ${item.endUserId?.S}, Nango ${owner})` });
    }
    const expected = connection.deleted ? 'deleted' : connection.errors.length > 0 ? 'error' : 'active';
    if (item.status.S !== expected) wrongStatus.push({ id, text: `${id} (store ${item.status.S}, Nango ${expected})`, stored: item.status.S, expected });
  }
  return { truth, lost, wrongOwner, wrongStatus };
}

/** " (n: store error, Nango active, after a refresh failed, recovered; ...)": what the connections
 * that differ went through, to tell a known limit from a bug. */
function describeFates(differences, connections) {
  if (differences.length === 0) return '';
  const fateOf = new Map(connections.map((c) => [c.connectionId, c.fate ?? 'authorized only']));
  const groups = new Map();
  for (const { id, stored, expected } of differences) {
    const key = `store ${stored}, Nango ${expected}, ${fateOf.get(id) ?? 'unknown to the soak'}`;
    groups.set(key, (groups.get(key) ?? 0) + 1);
  }
  return ` (${[...groups].sort((a, b) => b[1] - a[1]).map(([key, n]) => `${n}: ${key}`).join('; ')})`;
}

/** Webhook attempts between two stats that met anything but a 200, by what they met. */
function answersBetween(before, after) {
  return Object.fromEntries(Object.entries(after.answers)
    .map(([answer, n]) => [answer, n - (before.answers[answer] ?? 0)]).filter(([answer, n]) => n > 0 && answer !== '200'));
}
const describeAnswers = (answers) => Object.entries(answers).map(([answer, n]) => `${answer} x${n}`).join(', ') || 'none but 200';

/** DynamoDB Local stopped (SIGTERM) for longer than Nango's retries last, then started again
 * as it was (command line, working directory, environment, so the same port and data on disk). */
async function dynamodbOutage() {
  const pid = dynamodbPid();
  const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(0, -1);
  const cwd = readlinkSync(`/proc/${pid}/cwd`);
  const env = Object.fromEntries(readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean)
    .map((entry) => [entry.slice(0, entry.indexOf('=')), entry.slice(entry.indexOf('=') + 1)]));
  if (!argv.includes('-dbPath')) throw new Error('DynamoDB Local runs in memory: a restart would lose every item (scripts/soak keeps it on disk)');
  // Something to lose: the store holds the first connections before DynamoDB is stopped.
  await waitFor('the first connections stored', async () => (await scanTable({ count: true })) > 0, 60_000);
  const itemsBefore = await scanTable({ count: true });
  const statsBefore = await emulator('GET', '/_emulator/webhooks/stats');
  const stoppedAt = performance.now();
  process.kill(pid, 'SIGTERM');
  await waitFor('DynamoDB Local stopping', async () => !alive(pid) && !(await dynamodbAnswers()), 30_000);
  const downAt = performance.now();
  await sleep(OUTAGE_MS);
  const log = openSync(process.env.SOAK_DYNAMODB_LOG ?? '/dev/null', 'a');
  dynamodbRestarted = spawn(argv[0], argv.slice(1), { cwd, env, stdio: ['ignore', log, log] });
  if (process.env.SOAK_DYNAMODB_PID_FILE) writeFileSync(process.env.SOAK_DYNAMODB_PID_FILE, `${dynamodbRestarted.pid}\n`);
  await waitFor('DynamoDB Local starting again', dynamodbAnswers, 60_000);
  const backAt = performance.now();
  const itemsAfter = await scanTable({ count: true });
  // Webhooks sent during the outage fail once their last retry has met it too.
  await sleep(retryDelaysMs.reduce((a, b) => a + b, 0) + 1000);
  const statsAfter = await emulator('GET', '/_emulator/webhooks/stats');
  report.outage = {
    seconds: (backAt - stoppedAt) / 1000, refusingSeconds: (backAt - downAt) / 1000,
    itemsBefore, itemsAfter, pid, newPid: dynamodbRestarted.pid,
    answers: answersBetween(statsBefore, statsAfter), failed: statsAfter.failed - statsBefore.failed,
  };
  faults.push(`DynamoDB Local stopped ${report.outage.seconds.toFixed(1)} s and started again`);
}

/** Kills create-session while it waits on Nango for a session (a one-shot hang armed for it):
 * the request it held must get a 5xx from the gateway, and the client's retry a session. */
async function killCreateSessionMidInvocation(user) {
  const token = (await api('POST', '/dev/token', undefined, user, 200)).body.token;
  const { fault } = await emulator('POST', '/_emulator/faults', { route: 'POST /connect/sessions', count: 1, hangMs: 4000 });
  // This user's request, or another worker's before it, meets the hang; whichever it is, its
  // client retries (api()).
  const session = api('POST', '/sessions', token, { allowedIntegrations: [integration] }, 201);
  await waitFor('the hang on POST /connect/sessions', async () =>
    (await emulator('GET', '/_emulator/faults')).faults.find((f) => f.id === fault.id)?.hits === 1, 30_000);
  await sleep(300);
  // With several sandboxes, the status's pid is the one busy longest: the hung call's.
  const before = (await functionsNow())['create-session'];
  if (before.invoking < 1) throw new Error(`create-session is not mid-invocation: ${JSON.stringify(before)}`);
  const killedAt = performance.now();
  process.kill(ownFunctionPid(before, 'create-session'), 'SIGKILL');
  let answer;
  await waitFor('the killed request\'s answer', () => {
    answer = serverErrors.find((e) => e.endpoint === 'POST /sessions' && e.at >= killedAt);
    return answer !== undefined;
  }, 10_000);
  const connectionId = await authorize((await session).body.sessionToken);
  const after = (await functionsNow())['create-session'];
  report.createSessionKill = { pid: before.pid, status: answer.status, body: answer.body, before, after };
  faults.push(`create-session killed mid-invocation (pid ${before.pid}, waiting on Nango)`);
  return { connectionId, user, token };
}

/** Kills webhook-receiver inside a DynamoDB call: DynamoDB Local is paused (SIGSTOP) before this
 * user's creation webhook goes out, so the invocation cannot finish; then DynamoDB goes on
 * (SIGCONT) and Nango's retries deliver what the kill failed. */
async function killReceiverMidInvocation(user) {
  const token = (await api('POST', '/dev/token', undefined, user, 200)).body.token;
  const session = await api('POST', '/sessions', token, { allowedIntegrations: [integration] }, 201);
  const pid = dynamodbPid();
  const statsBefore = await emulator('GET', '/_emulator/webhooks/stats');
  const pausedAt = performance.now();
  process.kill(pid, 'SIGSTOP');
  dynamodbPaused = pid;
  let before;
  let connectionId;
  try {
    connectionId = await authorize(session.body.sessionToken);
    await waitFor('webhook-receiver mid-invocation', async () => (await functionsNow())['webhook-receiver'].invoking >= 1, 30_000);
    await sleep(300);
    // With several sandboxes, each may hold a delivery stuck on DynamoDB: the one busy longest.
    before = (await functionsNow())['webhook-receiver'];
    if (before.invoking < 1) throw new Error(`webhook-receiver is not mid-invocation: ${JSON.stringify(before)}`);
    process.kill(ownFunctionPid(before, 'webhook-receiver'), 'SIGKILL');
  } finally {
    process.kill(pid, 'SIGCONT');
    dynamodbPaused = null;
  }
  const pausedMs = performance.now() - pausedAt;
  // What the deliveries met until every retry of the killed ones is done.
  await sleep(retryDelaysMs.reduce((a, b) => a + b, 0) + 1000);
  const statsAfter = await emulator('GET', '/_emulator/webhooks/stats');
  const answers = answersBetween(statsBefore, statsAfter);
  const after = (await functionsNow())['webhook-receiver'];
  report.receiverKill = { pid: before.pid, pausedMs, answers, failed: statsAfter.failed - statsBefore.failed, before, after };
  faults.push(`webhook-receiver killed mid-invocation (pid ${before.pid}, inside a DynamoDB call)`);
  return { connectionId, user, token };
}

main().catch((error) => {
  console.error(`soak failed: ${error.stack ?? error}`);
  process.exit(2);
});
