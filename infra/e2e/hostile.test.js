// Hostile input, end to end: a seeded campaign of generated bad requests against the webhook
// receiver and every API route of a running stack (scripts/dev), then proof that none got in:
// no 2xx except the documented harmless ones, the store and Nango's truth unchanged, no 5xx, no
// function process crashed or restarted, every answer one openapi.yaml describes.
//
// The campaign also sends correctly signed forged auth webhooks (creations, deletions, overrides,
// refreshes naming real and made-up connection ids and owners): Nango signs whatever a provider
// webhook it cannot match carries (shared/docs/nango-api.md §6), so a valid signature proves
// nothing about who wrote the body. They are answered 200, and the store may change only as
// trust allows: no owner changed, no live connection deleted or tombstoned, nothing new listable
// for anyone; a forged creation may leave an orphan row (no owner, no tags, listed for nobody);
// a forged override or refresh may change the status of the connection it names (reconciliation
// corrects it from Nango's listing); every other byte stays.
//
//   STACK_URL          the gateway (http://127.0.0.1:3000)
//   NANGO_HOST         the Nango emulator (http://127.0.0.1:3003); needs its /_emulator controls
//   DYNAMODB_URL       the stack's DynamoDB Local (http://127.0.0.1:8000), scanned before and after
//   CONNECTIONS_TABLE  nango-connections
//   HOSTILE_SEED       the campaign's seed (random by default; printed, so a run can be replayed)
//   HOSTILE_REQUESTS   how many generated requests (1200)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac, generateKeyPairSync, createSign, randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { checkStackAnswer } from './contract.js';
import { isOrphan, scanTable } from './dynamodb.js';
import { call, stack } from './http.js';

const nangoHost = process.env.NANGO_HOST ?? 'http://127.0.0.1:3003';
const seed = Number(process.env.HOSTILE_SEED ?? randomInt(2 ** 31));
const requests = Number(process.env.HOSTILE_REQUESTS ?? 1200);
const emulatorConfig = JSON.parse(readFileSync(new URL('../nango-emulator/emulator.config.json', import.meta.url)));
const signingKey = emulatorConfig.webhookSigningKey;
const WEBHOOK = '/webhooks/nango';
const MB = 1024 * 1024;

// mulberry32: small, seeded, the same sequence on every machine.
function generator(value) {
  let state = value >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n) => Math.floor(next() * n);
  const pick = (list) => list[int(list.length)];
  const bytes = (n) => Buffer.from(Array.from({ length: n }, () => int(256)));
  const text = (n, alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789-_') =>
    Array.from({ length: n }, () => alphabet[int(alphabet.length)]).join('');
  return { next, int, pick, bytes, text };
}

const hmac = (key, body) => createHmac('sha256', key).update(body).digest('hex');
const legacy = (key, body) => createHash('sha256').update(Buffer.concat([Buffer.from(key), Buffer.from(body)])).digest('hex');
const flipByte = (rng, buffer) => {
  const copy = Buffer.from(buffer);
  const at = rng.int(copy.length);
  copy[at] ^= 1 + rng.int(255);
  return copy;
};
const flipHex = (rng, hex) => {
  const at = rng.int(hex.length);
  const other = '0123456789abcdef'.replace(hex[at], '');
  return `${hex.slice(0, at)}${rng.pick(other)}${hex.slice(at + 1)}`;
};
const nested = (depth, open = '[', close = ']') => `${open.repeat(depth)}${close.repeat(depth)}`;
const nestedObject = (depth) => `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;

async function mint(claims) {
  const answer = await call(`${stack}/dev/token`, { method: 'POST', body: claims });
  return answer.status === 200 ? answer.body.token : null;
}

async function snapshot() {
  return {
    store: await scanTable(),
    nango: (await call(`${nangoHost}/_emulator/connections`)).body,
    functions: withoutMoment((await call(`${stack}/dev/functions`)).body),
  };
}

// Per function: crashes, throttles, and restarts (sandboxes started that are not alive now: each
// replaced one that died). Not whether it is mid-invocation at this moment (the stream poller
// invokes publish-events in the background at any time), nor how many sandboxes run: the gateway
// starts more as requests overlap (Lambda scaling out), and that is no restart.
function withoutMoment(functions) {
  return Object.fromEntries(Object.entries(functions).map(([name, { crashes, throttles = 0, starts, sandboxes = [{}] }]) =>
    [name, { crashes, throttles, restarts: starts - sandboxes.length }]));
}

// Sessions, authorizations and their webhooks, until the emulator has nothing left in flight.
async function settle() {
  for (let i = 0; i < 150; i++) {
    const stats = (await call(`${nangoHost}/_emulator/webhooks/stats`)).body;
    if (stats.pending === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  assert.fail('the emulator still has webhooks in flight');
}

async function connect(token) {
  const session = await call(`${stack}/sessions`, { method: 'POST', token, body: { allowedIntegrations: ['github'] } });
  assert.equal(session.status, 201, JSON.stringify(session.body));
  const auth = await call(`${nangoHost}/api-auth/api-key/github?connect_session_token=${session.body.sessionToken}`, {
    method: 'POST',
    body: { apiKey: 'hostile-test-key' },
  });
  assert.equal(auth.status, 200, JSON.stringify(auth.body));
  return auth.body.connectionId;
}

async function waitListed(token, ids) {
  for (let i = 0; i < 100; i++) {
    const listed = (await call(`${stack}/connections`, { token })).body.connections.map((c) => c.connectionId);
    if (ids.every((id) => listed.includes(id))) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  assert.fail(`connections ${ids} never listed`);
}

// A JWT signed by a key that is not the issuer's: same header shape, any claims.
function forgeToken(rng, header, claims) {
  const encode = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const input = `${encode(header)}.${encode(claims)}`;
  if (header.alg === 'none') return `${input}.`;
  if (header.alg === 'HS256') return `${input}.${createHmac('sha256', rng.text(32)).update(input).digest('base64url')}`;
  const signer = createSign('RSA-SHA256');
  signer.update(input);
  return `${input}.${signer.sign(foreignKey).toString('base64url')}`;
}
function tamperSignature(rng, token) {
  const at = token.lastIndexOf('.') + 1 + rng.int(300);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'.replace(token[at], '');
  return `${token.slice(0, at)}${rng.pick(alphabet)}${token.slice(at + 1)}`;
}
const { privateKey: foreignKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });

test(`hostile input: ${requests} generated requests change nothing`, { timeout: 600_000 }, async () => {
  console.log(`# hostile input: seed ${seed} (HOSTILE_SEED=${seed} replays it), ${requests} requests`);
  const rng = generator(seed);
  const run = `${seed.toString(36)}-${Date.now().toString(36)}`;

  // The cast: a victim with two real connections (so that a cursor of theirs exists), an
  // attacker with one, in two organizations.
  const victim = { sub: `hostile-victim-${run}`, org_id: `hostile-org-v-${run}`, email: `v-${run}@example.com` };
  const attacker = { sub: `hostile-attacker-${run}`, org_id: `hostile-org-a-${run}` };
  const victimToken = await mint(victim);
  const attackerToken = await mint(attacker);
  const victimIds = [await connect(victimToken), await connect(victimToken)];
  const attackerIds = [await connect(attackerToken)];
  await waitListed(victimToken, victimIds);
  await waitListed(attackerToken, attackerIds);
  await settle();
  const victimCursor = (await call(`${stack}/connections?limit=1`, { token: victimToken })).body.nextCursor;
  const attackerCursor = (await call(`${stack}/connections?limit=1`, { token: attackerToken })).body.nextCursor;
  assert.ok(victimCursor, 'the victim has a second page');
  const delivered = (await call(`${nangoHost}/_emulator/webhooks?connectionId=${victimIds[0]}`)).body.webhooks;
  const creation = delivered.find((d) => d.payload.operation === 'creation').body;
  const [, tokenPayload, tokenSignature] = attackerToken.split('.');
  const tokenHeader = JSON.parse(Buffer.from(attackerToken.split('.')[0], 'base64url'));
  const validClaims = JSON.parse(Buffer.from(tokenPayload, 'base64url'));

  // Tokens with odd claims, as far as /dev/token mints them (it trims, and drops blank and
  // non-string claims: those come out as tokens without the claim).
  const longValue = 'x'.repeat(300);
  const oddSubs = ['null', 'undefined', '[a b]', '{}', '{"id":"x"}', 'NaN', longValue, 'a\u0001b', 'a\u0000b', `${victim.sub}\u200b`];
  const oddOrgs = ['null', 'None', '[a b]', '{}', '[]', longValue, 'o\u0007rg', 'org\u0000', victim.org_id.toUpperCase()];
  const oddTokens = [];
  const refused = [];
  for (const sub of oddSubs) {
    const token = await mint({ sub });
    if (token) oddTokens.push({ kind: 'sub', value: sub, token });
    else refused.push(JSON.stringify({ sub }));
  }
  for (const org of oddOrgs) {
    const token = await mint({ sub: `hostile-odd-${run}-${oddTokens.length}`, org_id: org });
    if (token) oddTokens.push({ kind: 'org_id', value: org, token });
    else refused.push(JSON.stringify({ org_id: org }));
  }
  for (const claims of [{ sub: '' }, { sub: '   ' }, { sub: 42 }, { sub: null }, { sub: ['a'] }]) {
    if (!(await mint(claims))) refused.push(JSON.stringify(claims));
  }
  // An org_id of "" or a non-string is not refused but dropped from the token.
  const droppedOrg = await mint({ sub: `hostile-odd-${run}-blank-org`, org_id: '' });
  if (droppedOrg) oddTokens.push({ kind: 'org_id', value: '(blank, dropped)', token: droppedOrg });
  console.log(`# /dev/token refused: ${refused.join(', ') || 'none'}`);

  // Someone nobody knows, named as the owner in forged bodies: they must never list anything.
  const ghost = { sub: `hostile-ghost-${run}`, org_id: `hostile-org-g-${run}` };
  const ghostToken = await mint(ghost);
  const listedIds = async (token) => (await call(`${stack}/connections?limit=100`, { token })).body.connections.map((c) => c.connectionId).sort();
  const listings = async () => ({ victim: await listedIds(victimToken), attacker: await listedIds(attackerToken), ghost: await listedIds(ghostToken) });

  const before = await snapshot();
  const listedBefore = await listings();
  const known = [...victimIds, ...attackerIds];

  // Webhook bodies: what a signature would cover. Harmless when signed: a duplicate (unchanged)
  // or an auth operation the receiver does not know (ignored), so a correct signature may
  // legitimately get a 200. (Other types are published to the event bus: not generated here.)
  const unknownOperation = () => {
    const payload = JSON.parse(creation);
    payload.connectionId = rng.pick(known);
    payload.operation = `x-${rng.text(6)}`;
    return JSON.stringify(payload);
  };
  const harmless = () => rng.pick([creation, unknownOperation()]);
  const dangerous = () => {
    // What would change the store if it were accepted: a deletion or a new owner.
    const payload = JSON.parse(creation);
    payload.connectionId = rng.pick([...known, `hostile-new-${rng.text(8)}`]);
    payload.operation = rng.pick(['deletion', 'creation', 'refresh', 'override']);
    payload.success = rng.pick([true, false]);
    payload.tags = { end_user_id: attacker.sub, organization_id: attacker.org_id };
    return JSON.stringify(payload);
  };
  const weird = () =>
    rng.pick([
      'null', '[]', '"auth"', '42', 'true', '', '{', '{"type":', nested(5000), nestedObject(2000), nested(130),
      `{"type":"auth","operation":"x-unknown","connectionId":"${known[0]}","n":1e400}`, `{"type":"auth","connectionId":"${known[0]}","n":${'9'.repeat(400)}}`,
      // Duplicate keys, harmless whichever one a parser keeps: a duplicate or an unknown operation.
      creation.replace('{', '{"operation":"x-unknown",'),
      creation.replace(/}$/, ',"operation":"x-unknown"}'),
      `{"type":"auth","connectionId":${'1'.repeat(50)}}`,
      `{"type":"auth","connectionId":"${known[0]}","operation":"deletion","success":"true","providerConfigKey":null}`,
    ]);
  // Signed forged auth bodies, as Nango would forward them: any operation, a real or made-up
  // connection id, any owner. The ids whose status a forgery may change are recorded.
  const FORGED_PREFIX = `hostile-forged-${run}-`;
  const statusMayChange = new Set();
  const forgedAuth = () => {
    const operation = rng.pick(['creation', 'creation', 'deletion', 'deletion', 'override', 'refresh']);
    const connectionId = rng.pick([...known, ...known, `${FORGED_PREFIX}${rng.text(8)}`]);
    const success = operation === 'deletion' ? true : rng.next() < 0.5;
    const owner = rng.pick([attacker, victim, ghost, null]);
    const tags = owner ? { end_user_id: owner.sub, organization_id: owner.org_id, end_user_email: `forged-${rng.text(4)}@example.com` } : rng.pick([undefined, {}]);
    // A creation that failed, an override or a refresh: a status change the receiver may apply.
    if (operation !== 'deletion' && !(operation === 'creation' && success)) statusMayChange.add(connectionId);
    return JSON.stringify({
      from: 'nango',
      type: 'auth',
      connectionId,
      providerConfigKey: rng.pick(['github', 'github', 'github', 'linear']),
      authMode: 'API_KEY',
      provider: 'github',
      environment: 'dev',
      operation,
      success,
      ...(tags === undefined ? {} : { tags }),
      ...(success ? {} : { error: { type: 'refresh_token_external_error', description: 'invalid_grant' } }),
    });
  };
  const webhookPath = () => rng.pick([WEBHOOK, WEBHOOK, `${WEBHOOK}/${rng.text(6)}`, `${WEBHOOK}/../nango`]);
  const webhookCase = (category, body, headers, expect, signed = false) => ({
    route: 'webhook', category, method: 'POST', path: webhookPath(), body, headers, expect, signed,
  });
  const jsonType = { 'content-type': 'application/json' };

  // Each category makes one request; the campaign cycles through them, the generator varies each.
  const webhookCategories = {
    unsigned: () => webhookCase('unsigned', rng.pick([dangerous(), harmless(), weird()]), jsonType, [401]),
    forged: () => {
      const body = dangerous();
      const signature = rng.pick([rng.text(64, '0123456789abcdef'), hmac(rng.text(20), body), '', 'sha256=' + hmac(signingKey, body).slice(0, 10)]);
      return webhookCase('forged', body, { ...jsonType, 'x-nango-hmac-sha256': signature }, [401]);
    },
    'tampered body': () => {
      const body = Buffer.from(rng.pick([dangerous(), creation]));
      return webhookCase('tampered body', flipByte(rng, body), { ...jsonType, 'x-nango-hmac-sha256': hmac(signingKey, body) }, [401]);
    },
    'tampered header': () => {
      const body = dangerous();
      return webhookCase('tampered header', body, { ...jsonType, 'x-nango-hmac-sha256': flipHex(rng, hmac(signingKey, body)) }, [401]);
    },
    'legacy signature only': () => {
      const body = dangerous();
      return webhookCase('legacy signature only', body, { ...jsonType, 'x-nango-signature': legacy(signingKey, body) }, [401]);
    },
    'retired key': () => {
      const body = dangerous();
      const key = rng.pick([`${signingKey}-retired`, 'nango-webhook-signing-key-2025', signingKey.slice(0, -1)]);
      return webhookCase('retired key', body, { ...jsonType, 'x-nango-hmac-sha256': hmac(key, body) }, [401]);
    },
    oversized: () => {
      const padding = 'x'.repeat(MB + rng.int(MB));
      const body = `{"type":"auth","operation":"x-unknown","padding":"${padding}"}`;
      const signed = rng.next() < 0.5;
      const headers = { ...jsonType, ...(signed ? { 'x-nango-hmac-sha256': hmac(signingKey, body) } : {}) };
      // Signed (Nango forwards what a provider sent), it is acknowledged unread: a 4xx would count
      // towards Nango's circuit breaker. Unsigned, it is refused on its size.
      return webhookCase('oversized', body, headers, signed ? [200] : [413], signed);
    },
    truncated: () => {
      const full = rng.pick([dangerous(), creation]);
      const cut = full.slice(0, 1 + rng.int(full.length - 1));
      // Signed as sent (then not a webhook), or signed whole and cut on the way.
      return rng.next() < 0.5
        ? webhookCase('truncated', cut, { ...jsonType, 'x-nango-hmac-sha256': hmac(signingKey, cut) }, [200], true)
        : webhookCase('truncated', cut, { ...jsonType, 'x-nango-hmac-sha256': hmac(signingKey, full) }, [401]);
    },
    'wrong content type': () => {
      const type = rng.pick(['text/plain', 'application/octet-stream', 'multipart/form-data; boundary=x', 'application/x-www-form-urlencoded', 'image/png', 'application/json; charset=latin1']);
      if (rng.next() < 0.5) {
        const body = harmless();
        return webhookCase('wrong content type', body, { 'content-type': type, 'x-nango-hmac-sha256': hmac(signingKey, body) }, [200], true);
      }
      return webhookCase('wrong content type', dangerous(), { 'content-type': type }, [401]);
    },
    'non-UTF-8': () => {
      const body = Buffer.concat([Buffer.from('{"type":"auth","operation":"x-unknown","x":"'), Buffer.from([0xff, 0xfe, 0xc3, 0x28, 0x80]), rng.bytes(8), Buffer.from('"}')]);
      const type = rng.pick(['application/json', 'application/octet-stream']);
      // As text the function URL decodes the body lossily, so the signature no longer matches.
      return webhookCase('non-UTF-8', body, { 'content-type': type, 'x-nango-hmac-sha256': hmac(signingKey, body) }, [200, 401], true);
    },
    'weird JSON, signed': () => {
      const body = weird();
      return webhookCase('weird JSON, signed', body, { ...jsonType, 'x-nango-hmac-sha256': hmac(signingKey, body) }, [200], true);
    },
    'signed forged auth': () => {
      const body = forgedAuth();
      return { ...webhookCase('signed forged auth', body, { ...jsonType, 'x-nango-hmac-sha256': hmac(signingKey, body) }, [200], true), forgery: true };
    },
    'signed forged auth, again': () => {
      const body = forgedAuth();
      return { ...webhookCase('signed forged auth', body, { ...jsonType, 'x-nango-hmac-sha256': hmac(signingKey, body) }, [200], true), forgery: true };
    },
    'signed replay': () => {
      const body = harmless();
      return webhookCase('signed replay', body, { ...jsonType, 'x-nango-hmac-sha256': hmac(signingKey, body) }, [200], true);
    },
    'wrong method': () => ({
      route: 'webhook', category: 'wrong method', method: rng.pick(['GET', 'PUT', 'DELETE', 'PATCH']), path: WEBHOOK,
      body: undefined, headers: {}, expect: [405],
    }),
  };

  // API requests: a token (forged, tampered, odd, or the attacker's own) and a bad request.
  const forgedTokens = () =>
    rng.pick([
      '',
      'Bearer',
      rng.text(40),
      `${tokenHeader.alg}.${tokenPayload}.${tokenSignature}`,
      forgeToken(rng, { ...tokenHeader, alg: 'none' }, { ...validClaims, sub: victim.sub }),
      forgeToken(rng, { ...tokenHeader, alg: 'HS256' }, { ...validClaims, sub: victim.sub }),
      forgeToken(rng, tokenHeader, { ...validClaims, sub: victim.sub, org_id: victim.org_id }),
      forgeToken(rng, { alg: 'RS256', typ: 'JWT' }, validClaims),
      `${attackerToken.split('.')[0]}.${Buffer.from(JSON.stringify({ ...validClaims, sub: victim.sub })).toString('base64url')}.${tokenSignature}`,
      `${attackerToken.split('.')[0]}.${tokenPayload}.${flipHex(rng, tokenSignature.replace(/[^0-9a-f]/g, '0'))}`,
      `${attackerToken.split('.')[0]}.${tokenPayload}.${tokenSignature.slice(0, -4)}`,
      `${attackerToken}.extra`,
      // One character of the signature changed, away from its end: the last base64url character
      // of a 256-byte signature carries 4 padding bits, so changing only those is no change.
      tamperSignature(rng, attackerToken),
    ]);
  const badBodies = () =>
    rng.pick([
      ['null', jsonType], ['[]', jsonType], ['"github"', jsonType], ['42', jsonType], ['{', jsonType],
      ['{"allowedIntegrations":', jsonType], [nested(5000), jsonType], [nestedObject(3000), jsonType],
      ['{"allowedIntegrations":["github"],"endUser":{"id":"x"}}', jsonType],
      [`{"allowedIntegrations":["github"],"tags":{"end_user_id":"${victim.sub}"}}`, jsonType],
      [`{"allowedIntegrations":[${'1'.repeat(400)}]}`, jsonType],
      ['{"allowedIntegrations":1e400}', jsonType],
      ['{"allowedIntegrations":["github"],"allowedIntegrations":["not-an-integration"]}', jsonType],
      ['{"allowedIntegrations":["not-an-integration"],"allowedIntegrations":["github"]}', jsonType],
      [`{"connectionId":"${victimIds[0]}","connectionId":"${attackerIds[0]}"}`, jsonType],
      [`{"connectionId":"${attackerIds[0]}","connectionId":"${victimIds[0]}"}`, jsonType],
      [`{"connectionId":"${victimIds[0]}","integrationId":"github"}`, jsonType],
      [Buffer.concat([Buffer.from('{"allowedIntegrations":["'), Buffer.from([0xff, 0xc3, 0x28]), Buffer.from('"]}')]), rng.pick([jsonType, { 'content-type': 'application/octet-stream' }])],
      [`{"allowedIntegrations":["${'x'.repeat(17 * 1024)}"]}`, jsonType],
      [JSON.stringify({ allowedIntegrations: ['github'] }).slice(0, 20), jsonType],
      ['allowedIntegrations=github', { 'content-type': 'application/x-www-form-urlencoded' }],
      [`{"connectionId":${'9'.repeat(30)}}`, jsonType],
      [`{"connectionId":null}`, jsonType],
      [`{"connectionId":["${victimIds[0]}"]}`, jsonType],
    ]);
  const foreignIds = () =>
    rng.pick([
      victimIds[0], victimIds[1], `${victimIds[0]} `, victimIds[0].toUpperCase(), `${victimIds[0]}\u0000`,
      `hostile-nobody-${rng.text(10)}`, '', 'x'.repeat(2000), '../connections', '%00', '{}', 'null',
    ]);
  const badCursors = () =>
    rng.pick([
      victimCursor, flipHex(rng, victimCursor), `${victimCursor}&cursor=${victimCursor}`, victimCursor.slice(0, -2), `${victimCursor}AA`, rng.text(40),
      Buffer.from(JSON.stringify({ endUser: victim.sub })).toString('base64url'), '', '%%%', 'null', '{}',
      rng.bytes(60).toString('base64url'), 'x'.repeat(5000), ...(attackerCursor ? [flipHex(rng, attackerCursor)] : []),
    ]);
  const badLimits = () =>
    rng.pick(['0', '101', '-1', '1.5', 'abc', '1e2', '', ' 5', '0x10', '99999999999999999999', '50&limit=1', '1&limit=1', 'NaN', '１０', '+5']);

  const api = (route, category, method, path, { token, body, headers = {} }, expect, mayList = false) => ({
    route, category, method, path, body, headers: { ...headers, ...(token === undefined ? {} : { authorization: token.startsWith('Bearer') || token === '' ? token : `Bearer ${token}` }) },
    expect, mayList,
  });
  const routes = {
    'POST /sessions': (token, kind) => {
      const [body, headers] = badBodies();
      return api('POST /sessions', kind, 'POST', '/sessions', { token, body, headers }, kind === 'bad body' ? [400, 413] : [401, 400, 413]);
    },
    'POST /sessions/reconnect': (token, kind) => {
      if (kind === 'bad body' && rng.next() < 0.5) {
        const [body, headers] = badBodies();
        return api('POST /sessions/reconnect', kind, 'POST', '/sessions/reconnect', { token, body, headers }, [400, 404, 413]);
      }
      const body = JSON.stringify({ connectionId: foreignIds() });
      return api('POST /sessions/reconnect', kind === 'bad body' ? "other users' ids" : kind, 'POST', '/sessions/reconnect', { token, body, headers: jsonType }, [400, 401, 404]);
    },
    'DELETE /connections/{id}': (token, kind) => {
      const id = foreignIds();
      // Always one encoded segment: an unencoded "../" would be resolved by the client, and an
      // empty one is another route (API Gateway's own 404 for DELETE /connections).
      const path = `/connections/${encodeURIComponent(id) || '%20'}`;
      return api('DELETE /connections/{id}', kind === 'bad body' ? "other users' ids" : kind, 'DELETE', path, { token }, [400, 401, 404]);
    },
    'GET /connections': (token, kind) => {
      if (kind === 'bad body') {
        const cursor = rng.next() < 0.5;
        const value = cursor ? badCursors() : badLimits();
        // A repeated parameter is sent as such ("&cursor=" is left unencoded).
        const query = cursor ? `cursor=${encodeURIComponent(value).replace('%26cursor%3D', '&cursor=')}` : `limit=${value}`;
        return api('GET /connections', cursor ? 'bad cursor' : 'bad limit', 'GET', `/connections?${query}`, { token }, [400]);
      }
      return api('GET /connections', kind, 'GET', '/connections', { token }, [401, 200], kind === 'odd claims');
    },
  };
  const apiCategories = {};
  for (const [name, make] of Object.entries(routes)) {
    apiCategories[`${name} forged token`] = () => make(forgedTokens(), 'forged token');
    apiCategories[`${name} odd claims`] = () => make(rng.pick(oddTokens).token, 'odd claims');
    apiCategories[`${name} attacker`] = () => make(attackerToken, 'bad body');
  }

  const categories = Object.values({ ...webhookCategories, ...apiCategories });
  const plan = Array.from({ length: requests }, (_, i) => categories[i % categories.length]());

  const tally = {};
  const problems = [];
  let accepted = 0;
  let fivexx = 0;
  let transportRetries = 0;
  const count = (key) => (tally[key] = (tally[key] ?? 0) + 1);
  async function send(request) {
    const url = `${stack}${request.path}`;
    let response;
    // One retry when the connection itself failed: the client can reuse a kept-alive socket just
    // as the server closes it (seen once in 10,000). Counted and printed; a second failure counts.
    for (let attempt = 1; !response; attempt++) {
      try {
        response = await fetch(url, { method: request.method, headers: request.headers, body: request.body });
      } catch (error) {
        if (attempt === 1) {
          transportRetries += 1;
          continue;
        }
        problems.push(`${request.route} ${request.category}: no answer (${error.cause?.code ?? error.message})`);
        return;
      }
    }
    const text = await response.text();
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = text;
    }
    count(`${request.route} | ${request.category}`);
    count(`status ${response.status}${body?.error?.code ? ` ${body.error.code}` : body?.result ? ` ${body.result}` : ''}`);
    const what = `${request.route} ${request.category} ${request.method} ${request.path.slice(0, 80)} -> ${response.status} ${text.slice(0, 200)}`;
    if (response.status >= 500) fivexx += 1;
    if (response.status >= 200 && response.status < 300) {
      // The only 2xx allowed: a correctly signed webhook the receiver documents as harmless (a
      // signed body it can never use is acknowledged, so that Nango's circuit breaker stays
      // closed), and an empty list for a caller whose odd claims name nobody we know.
      const harmlessWebhook = request.signed && ['ignored', 'unchanged', 'unusable', 'not_confirmed'].includes(body?.result);
      const emptyList = request.mayList && Array.isArray(body?.connections) && body.connections.length === 0;
      // A signed forgery is acknowledged whatever it is; what it may change is checked in the store below.
      if (!harmlessWebhook && !emptyList && !request.forgery) {
        accepted += 1;
        problems.push(`accepted: ${what}`);
      }
    }
    if (!request.expect.includes(response.status)) problems.push(`unexpected: ${what}`);
    try {
      checkStackAnswer(stack, request.method, url, response, body);
    } catch (error) {
      problems.push(`undocumented: ${what}: ${error.message}`);
    }
  }
  const started = Date.now();
  const queue = [...plan];
  await Promise.all(Array.from({ length: 4 }, async () => {
    while (queue.length) await send(queue.shift());
  }));
  const seconds = (Date.now() - started) / 1000;

  await settle();
  const after = await snapshot();
  const listedAfter = await listings();
  const written =
    after.store.filter((item) => !before.store.includes(item)).length +
    before.store.filter((item) => !after.store.includes(item)).length;
  const poisoned = poisonedRows(before.store, after.store, { forgedPrefix: FORGED_PREFIX, statusMayChange });
  const restarts = Object.entries(after.functions).reduce(
    (sum, [name, fn]) => sum + (fn.restarts - before.functions[name].restarts) + (fn.crashes - before.functions[name].crashes), 0);

  const byRoute = {};
  for (const [key, n] of Object.entries(tally)) {
    if (key.startsWith('status ')) continue;
    const [route] = key.split(' | ');
    byRoute[route] = (byRoute[route] ?? 0) + n;
  }
  const byCategory = Object.entries(tally).filter(([key]) => !key.startsWith('status ')).map(([key, n]) => `${key}: ${n}`);
  const statuses = Object.entries(tally).filter(([key]) => key.startsWith('status ')).map(([key, n]) => `${key.slice(7)}: ${n}`);
  console.log(`# by route and category:\n#   ${byCategory.join('\n#   ')}`);
  console.log(`# answers: ${statuses.join(', ')}`);
  console.log(
    `# hostile input: seed ${seed}, ${plan.length} requests in ${seconds.toFixed(1)} s (${Object.entries(byRoute).map(([r, n]) => `${r} ${n}`).join(', ')}); ` +
      `accepted-bad: ${accepted}, rows written: ${written} (forged ids whose status may change: ${statusMayChange.size}), poisoned: ${poisoned.length}, ` +
      `5xx: ${fivexx}, restarts: ${restarts}, problems: ${problems.length}, transport retries: ${transportRetries}`,
  );

  assert.deepEqual(problems, [], problems.slice(0, 20).join('\n'));
  assert.equal(accepted, 0);
  assert.equal(fivexx, 0);
  assert.deepEqual(poisoned, [], `the store changed as no forgery may change it:\n${poisoned.slice(0, 20).join('\n')}`);
  assert.deepEqual(listedAfter, listedBefore, 'what each user lists changed');
  assert.deepEqual(after.nango, before.nango, "Nango's connections changed");
  assert.deepEqual(after.functions, before.functions, 'a function process crashed or restarted');
  assert.ok(plan.length >= 1000 || process.env.HOSTILE_REQUESTS, 'at least 1,000 requests');
});

// What a signed forgery may change in a row it names (a status change, which reconciliation
// corrects from Nango's listing): nothing else of a row may differ.
const STATUS_ATTRIBUTES = ['status', 'errorType', 'errorDescription', 'updatedAt', 'version', 'reconnectedAt'];

/**
 * Every difference between two scans (canonical JSON items) that no forgery may cause, as lines:
 * a row gone, an owner changed, a live row deleted or tombstoned, any other attribute changed (but
 * the status of a row a forged override/refresh/failed creation named), or a new row that is not
 * an orphan of a forged id (no `endUserId`, no `organizationId`, no tags).
 */
function poisonedRows(beforeItems, afterItems, { forgedPrefix, statusMayChange }) {
  const byId = (items) => new Map(items.map((text) => JSON.parse(text)).map((item) => [item.connectionId.S, item]));
  const beforeRows = byId(beforeItems);
  const afterRows = byId(afterItems);
  const without = (item, names) => JSON.stringify(Object.fromEntries(Object.entries(item).filter(([name]) => !names.includes(name))));
  const problems = [];
  for (const [id, was] of beforeRows) {
    const now = afterRows.get(id);
    if (!now) {
      problems.push(`${id}: the row is gone`);
      continue;
    }
    for (const owner of ['endUserId', 'organizationId']) {
      if (JSON.stringify(now[owner]) !== JSON.stringify(was[owner])) problems.push(`${id}: ${owner} ${JSON.stringify(was[owner])} -> ${JSON.stringify(now[owner])}`);
    }
    if (was.status?.S !== 'deleted' && (now.status?.S === 'deleted' || now.deletedAt)) problems.push(`${id}: a live connection was deleted (status ${now.status?.S})`);
    const mayChange = statusMayChange.has(id) ? STATUS_ATTRIBUTES : [];
    if (without(now, mayChange) !== without(was, mayChange)) problems.push(`${id}: ${without(was, mayChange)} -> ${without(now, mayChange)}`);
  }
  for (const [id, now] of afterRows) {
    if (beforeRows.has(id)) continue;
    if (!id.startsWith(forgedPrefix)) problems.push(`${id}: a new row for an id no forgery named`);
    else if (!isOrphan(now)) problems.push(`${id}: a forgery stored a row that is not an orphan (an owner or tags): ${JSON.stringify(now)}`);
  }
  return problems;
}
