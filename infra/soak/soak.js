// The soak driver (scripts/soak starts the stack and runs this): end users across organizations
// authorize connections through the real API and the emulator's API-key flow while the emulator
// duplicates, reorders and drops webhooks and answers the session endpoints with faults; a share
// of the connections reconnect, fail a refresh, recover and are deleted. At the end the store is
// compared with the emulator's truth, connection by connection. Exit 1 when anything differs.
//
//   STACK_URL, NANGO_HOST, DYNAMODB_URL, CONNECTIONS_TABLE   the stack (set by scripts/soak)
//   SOAK_CONNECTIONS (200), SOAK_ORGS (10), SOAK_CONCURRENCY (8), SOAK_SEED (1)
//   SOAK_KILL_PATTERN   a path that `pgrep -f` finds a function process by (killed mid-run), optional
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const stack = process.env.STACK_URL;
const nangoHost = process.env.NANGO_HOST;
const dynamodb = process.env.DYNAMODB_URL;
const table = process.env.CONNECTIONS_TABLE ?? 'nango-connections';
const total = Number(process.env.SOAK_CONNECTIONS ?? 200);
const orgs = Number(process.env.SOAK_ORGS ?? 10);
const concurrency = Number(process.env.SOAK_CONCURRENCY ?? 8);
const seed = Number(process.env.SOAK_SEED ?? 1);
const killPattern = process.env.SOAK_KILL_PATTERN;
const integration = 'github';

const latencies = new Map(); // endpoint -> [ms]
const retries = new Map(); // endpoint -> retried answers (429/5xx)
const faults = [];

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
  return { status: response.status, body: parsed };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Our API, retried later on 429/5xx as a client would (the API answers 503 when Nango fails). */
async function api(method, path, token, body, expected) {
  const endpoint = `${method} ${path.replace(/\/connections\/[^/]+$/, '/connections/{id}')}`;
  for (let attempt = 0; attempt < 30; attempt++) {
    const answer = await call(`${stack}${path}`, { method, token, body, endpoint });
    if (answer.status === expected) return answer;
    if (answer.status === 429 || answer.status >= 500) {
      retries.set(endpoint, (retries.get(endpoint) ?? 0) + 1);
      await sleep(200 + 100 * attempt);
      continue;
    }
    throw new Error(`${endpoint}: ${answer.status} ${JSON.stringify(answer.body)}`);
  }
  throw new Error(`${endpoint}: still failing after 30 attempts`);
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

async function scanTable() {
  const items = [];
  let start;
  do {
    const response = await fetch(dynamodb, {
      method: 'POST',
      headers: {
        'x-amz-target': 'DynamoDB_20120810.Scan',
        'content-type': 'application/x-amz-json-1.0',
        authorization: 'AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0',
      },
      body: JSON.stringify({ TableName: table, ConsistentRead: true, ...(start ? { ExclusiveStartKey: start } : {}) }),
    });
    const page = await response.json();
    if (response.status !== 200) throw new Error(`scan: ${JSON.stringify(page)}`);
    items.push(...page.Items);
    start = page.LastEvaluatedKey;
  } while (start);
  return items.filter((item) => item.connectionId && item.status);
}

async function settle() {
  for (let i = 0; i < 600; i++) {
    const stats = await emulator('GET', '/_emulator/webhooks/stats');
    if (stats.pending === 0) return stats;
    await sleep(200);
  }
  throw new Error('webhooks still pending after 120 s');
}

function percentile(values, p) {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function main() {
  const startedAt = performance.now();
  // Webhooks: every one sent twice more, shuffled within 300 ms, at most 8 POSTs in flight; Nango's
  // retry waits shortened so that a retried webhook lands within the run.
  await emulator('POST', '/_emulator/config', { retryDelaysMs: [500, 1000] });
  await emulator('POST', '/_emulator/webhooks/delivery', { duplicates: 2, reorderWindowMs: 300, concurrency: 8, seed });

  const users = Array.from({ length: total }, (_, i) => ({
    sub: `soak-user-${seed}-${i}`,
    email: `soak-${i}@example.com`,
    name: `Soak User ${i}`,
    org_id: `soak-org-${seed}-${i % orgs}`,
  }));
  const dropFrom = Math.floor(total * 0.3);
  const dropCount = Math.max(1, Math.floor(total * 0.05));
  const faultFrom = Math.floor(total * 0.5);
  const killAt = Math.floor(total * 0.7);

  // Phase 1: every user mints a token, creates a session and authorizes a connection.
  const connections = [];
  await pool(users, async (user, index) => {
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
    if (index === killAt && killPattern) killFunction();
    const token = (await api('POST', '/dev/token', undefined, user, 200)).body.token;
    const session = await api('POST', '/sessions', token, { allowedIntegrations: [integration] }, 201);
    const connectionId = await authorize(session.body.sessionToken);
    connections.push({ connectionId, user, token });
  });
  const authorizedAt = performance.now();

  // The dropped creations reach the store only through reconciliation, as in production when the
  // scheduled run comes round; the fates below need the store to know every connection.
  await settle();
  const midReconcile = await call(`${stack}/dev/reconcile`, { method: 'POST', endpoint: 'POST /dev/reconcile' });
  if (midReconcile.status !== 200) throw new Error(`reconcile: ${midReconcile.status} ${JSON.stringify(midReconcile.body)}`);

  // Phase 2: fates. A share reconnect, fail a refresh and recover (or stay failed), are deleted.
  const fates = { reconnected: 0, refreshFailed: 0, recovered: 0, deleted: 0 };
  await emulator('POST', '/_emulator/faults', { route: 'POST /connect/sessions/reconnect', count: 3, status: 503 });
  faults.push('POST /connect/sessions/reconnect: 3x 503');
  await pool(connections, async (connection) => {
    const roll = random();
    if (roll < 0.15) {
      const session = await api('POST', '/sessions/reconnect', connection.token, { connectionId: connection.connectionId }, 201);
      await authorize(session.body.sessionToken);
      fates.reconnected++;
    } else if (roll < 0.3) {
      await emulator('POST', `/_emulator/connections/${connection.connectionId}/refresh-failure`, {});
      fates.refreshFailed++;
      if (random() < 0.5) {
        await sleep(50);
        await emulator('POST', `/_emulator/connections/${connection.connectionId}/refresh-success`, {});
        fates.recovered++;
      }
    } else if (roll < 0.4) {
      // Only once the store has it: our DELETE answers 404 for a connection it does not know yet.
      for (let i = 0; i < 25; i++) {
        const answer = await call(`${stack}/connections/${connection.connectionId}`, {
          method: 'DELETE', token: connection.token, endpoint: 'DELETE /connections/{id}',
        });
        if (answer.status < 300) { fates.deleted++; return; }
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

  const stats = await settle();
  const reconcile = await call(`${stack}/dev/reconcile`, { method: 'POST', endpoint: 'POST /dev/reconcile' });
  if (reconcile.status !== 200) throw new Error(`reconcile: ${reconcile.status} ${JSON.stringify(reconcile.body)}`);
  await settle();
  const finishedAt = performance.now();

  // The comparison, connection by connection.
  const truth = (await emulator('GET', '/_emulator/connections')).connections;
  const stored = new Map((await scanTable()).map((item) => [item.connectionId.S, item]));
  const lost = [], wrongOwner = [], wrongStatus = [];
  for (const connection of truth) {
    const item = stored.get(connection.connection_id);
    if (!item) { lost.push(connection.connection_id); continue; }
    const owner = connection.first_tags?.end_user_id ?? null;
    if ((item.endUserId?.S ?? null) !== owner || (item.organizationId?.S ?? null) !== (connection.first_tags?.organization_id ?? null)) {
      wrongOwner.push(`${connection.connection_id} (store ${item.endUserId?.S}, Nango ${owner})`);
    }
    const expected = connection.deleted ? 'deleted' : connection.errors.length > 0 ? 'error' : 'active';
    if (item.status.S !== expected) wrongStatus.push(`${connection.connection_id} (store ${item.status.S}, Nango ${expected})`);
  }
  const functions = (await call(`${stack}/dev/functions`)).body;

  const seconds = (finishedAt - startedAt) / 1000;
  const rows = [
    ['connections (Nango truth)', `${truth.length} (${truth.filter((c) => !c.deleted).length} live, ${truth.filter((c) => c.deleted).length} deleted)`],
    ['end users / organizations', `${users.length} / ${orgs}`],
    ['fates', `${fates.reconnected} reconnected, ${fates.refreshFailed} refresh failed (${fates.recovered} recovered), ${fates.deleted} deleted`],
    ['webhooks', `${stats.events} events, ${stats.deliveries} deliveries (${stats.duplicates} duplicates), ${stats.delivered} delivered, ${stats.retries} retries, ${stats.failed} failed, ${stats.dropped} dropped, max ${stats.maxInFlight} in flight`],
    ['reconcile after the authorizations', JSON.stringify(midReconcile.body)],
    ['reconcile at the end', JSON.stringify(reconcile.body)],
    ['faults injected', faults.join('; ')],
    ['API retries (429/5xx seen)', [...retries].map(([k, v]) => `${k}: ${v}`).join(', ') || 'none'],
    ['function sandboxes', JSON.stringify(functions)],
    ['duration', `${seconds.toFixed(1)} s (authorizations: ${((authorizedAt - startedAt) / 1000).toFixed(1)} s)`],
    ['throughput', `${(truth.length / ((authorizedAt - startedAt) / 1000)).toFixed(1)} authorizations/s, ${(stats.deliveries / seconds).toFixed(1)} webhook deliveries/s`],
  ];
  for (const [endpoint, values] of [...latencies].sort()) {
    rows.push([`latency ${endpoint}`, `p50 ${percentile(values, 50).toFixed(0)} ms, p99 ${percentile(values, 99).toFixed(0)} ms (n=${values.length})`]);
  }
  rows.push(['lost', lost.length ? `${lost.length}: ${lost.join(', ')}` : '0']);
  rows.push(['wrong owner', wrongOwner.length ? `${wrongOwner.length}: ${wrongOwner.join(', ')}` : '0']);
  rows.push(['wrong status', wrongStatus.length ? `${wrongStatus.length}: ${wrongStatus.join(', ')}` : '0']);
  const width = Math.max(...rows.map(([k]) => k.length));
  console.log('\nsoak');
  for (const [k, v] of rows) console.log(`  ${k.padEnd(width)}  ${v}`);
  if (lost.length || wrongOwner.length || wrongStatus.length) process.exit(1);
}

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

function killFunction() {
  try {
    // Only a process of this soak's own stack: another stack on the machine runs the same binary.
    const pids = execFileSync('pgrep', ['-f', killPattern]).toString().trim().split('\n').filter(Boolean)
      .filter((pid) => descendsFrom(Number(pid), Number(process.env.SOAK_STACK_PID)));
    if (pids.length === 0) return;
    process.kill(Number(pids[0]), 'SIGKILL');
    faults.push(`function process ${pids[0]} killed (${killPattern.split('/').pop()})`);
  } catch {
    faults.push(`no function process found to kill (${killPattern.split('/').pop()})`);
  }
}

main().catch((error) => {
  console.error(`soak failed: ${error.stack ?? error}`);
  process.exit(2);
});
