// The authorizer against an OIDC issuer on loopback: discovery and JWKS over real HTTP, each check
// API Gateway's JWT authorizer makes, each way a token is refused, key rotation and JWKS caching.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { SignJWT } from 'jose';
import { createAuthorizer } from '../src/authorizer.js';
import { keyPair, now, sign, sleep, startIssuer, unsigned } from '../testkit/oidc.js';

const AUDIENCE = 'web-app-client';
let issuer, key, stranger, others, authorizer;

before(async () => {
  issuer = await startIssuer();
  key = await keyPair('RS256');
  stranger = await keyPair('RS256');
  // Keys of other algorithms, published by the issuer: only the algorithm decides.
  others = Object.fromEntries(
    await Promise.all(['RS384', 'RS512', 'PS256', 'ES256'].map(async (alg) => [alg, await keyPair(alg)])),
  );
  issuer.keys = [key, ...Object.values(others)];
  authorizer = createAuthorizer({ issuer: issuer.url, audiences: [AUDIENCE, 'second-app'], log: () => {} });
});
after(() => issuer.close());

const claims = (extra = {}) => ({ sub: 'user-1', iss: issuer.url, aud: AUDIENCE, iat: now(), exp: now() + 300, ...extra });
const without = (name) => Object.fromEntries(Object.entries(claims()).filter(([claim]) => claim !== name));

async function accepted(token) {
  const verdict = await authorizer.verify(await token);
  assert.equal(verdict.refusal, undefined, `refused: ${verdict.refusal}`);
  return verdict.claims;
}

async function refused(token, reason) {
  const verdict = await authorizer.verify(await token);
  assert.equal(verdict.claims, undefined, 'the token was accepted');
  assert.match(verdict.refusal, reason);
}

test('an RS256 token from the issuer is accepted, with its claims', async () => {
  const verified = await accepted(sign(key, claims({ org_id: 'org-1', groups: ['a', 'b'] })));
  assert.equal(verified.sub, 'user-1');
  assert.equal(verified.org_id, 'org-1');
  assert.deepEqual(verified.groups, ['a', 'b']);
});

test('RS384 and RS512 are accepted; PS256, ES256, HS256 and alg none are refused', async () => {
  for (const alg of ['RS384', 'RS512']) await accepted(sign(others[alg], claims()));
  for (const alg of ['PS256', 'ES256']) {
    await refused(sign(others[alg], claims()), new RegExp(`signing method ${alg} is invalid`));
  }
  // The classic confusion: HS256 "signed" with the issuer's public key as the HMAC secret.
  const hmac = new TextEncoder().encode(JSON.stringify(key.publicJwk));
  const confused = new SignJWT(claims()).setProtectedHeader({ alg: 'HS256', kid: key.kid }).sign(hmac);
  await refused(confused, /signing method HS256 is invalid/);
  await refused(unsigned(claims(), { kid: key.kid }), /signing method none is invalid/);
});

test('a token signed by another key is refused, under its own kid or under the issuer key\'s kid', async () => {
  await refused(sign(stranger, claims()), /no key in the issuer's JWKS matches/);
  await refused(sign(stranger, claims(), { kid: key.kid }), /signature is invalid/);
});

test('a token without a kid is refused', async () => {
  await refused(sign(key, claims(), { kid: undefined }), /no kid/);
});

test('a tampered payload is refused', async () => {
  const [header, , signature] = (await sign(key, claims())).split('.');
  const forged = Buffer.from(JSON.stringify(claims({ sub: 'admin' }))).toString('base64url');
  await refused(`${header}.${forged}.${signature}`, /signature is invalid/);
});

test('not a JWT at all is refused', async () => {
  for (const token of ['nope', 'a.b.c', 'e30.e30']) await refused(token, /not a (valid )?JWT|invalid/);
});

test('iss must equal the issuer exactly', async () => {
  await refused(sign(key, claims({ iss: 'https://elsewhere.example.com' })), /valid issuer/);
  await refused(sign(key, claims({ iss: `${issuer.url}/` })), /valid issuer/);
  await refused(sign(key, without('iss')), /valid issuer|iss/);
});

test('aud must name a configured audience; client_id counts only when there is no aud', async () => {
  await accepted(sign(key, claims({ aud: 'second-app' })));
  await accepted(sign(key, claims({ aud: ['some-api', AUDIENCE] })));
  await refused(sign(key, claims({ aud: 'other-app' })), /valid audience/);
  await refused(sign(key, claims({ aud: [] })), /valid audience/);
  // A Cognito access token: client_id, no aud.
  const access = without('aud');
  await accepted(sign(key, { ...access, client_id: AUDIENCE }));
  await refused(sign(key, { ...access, client_id: 'other-app' }), /valid audience/);
  await refused(sign(key, access), /valid audience/);
  // Both present: only aud is evaluated.
  await refused(sign(key, claims({ aud: 'other-app', client_id: AUDIENCE })), /valid audience/);
});

test('exp must be in the future, and is required', async () => {
  await refused(sign(key, claims({ exp: now() - 1 })), /expired/);
  await refused(sign(key, claims({ exp: now() })), /expired/);
  await refused(sign(key, without('exp')), /exp claim is missing/);
});

test('nbf and iat must not be in the future', async () => {
  await accepted(sign(key, claims({ nbf: now() - 10 })));
  await refused(sign(key, claims({ nbf: now() + 60 })), /not valid yet/);
  await accepted(sign(key, without('iat')));
  await refused(sign(key, claims({ iat: now() + 60 })), /issued in the future/);
});

test('the JWKS is fetched once and reused; discovery once', async () => {
  const fresh = await startIssuer();
  fresh.keys = [key];
  const cached = createAuthorizer({ issuer: fresh.url, audiences: [AUDIENCE], log: () => {} });
  try {
    const token = await sign(key, claims({ iss: fresh.url }));
    for (let i = 0; i < 5; i += 1) assert.ok((await cached.verify(token)).claims);
    assert.deepEqual(fresh.hits, { discovery: 1, jwks: 1 });
  } finally {
    await fresh.close();
  }
});

test('rotation: a new kid is fetched once; old tokens stay valid while the old key is published', async () => {
  const rotating = await startIssuer();
  const first = await keyPair('RS256');
  const second = await keyPair('RS256');
  rotating.keys = [first];
  const verifier = createAuthorizer({ issuer: rotating.url, audiences: [AUDIENCE], cooldownMs: 50, log: () => {} });
  const tokenBy = (signer) => sign(signer, claims({ iss: rotating.url }));
  try {
    assert.ok((await verifier.verify(await tokenBy(first))).claims);
    rotating.keys = [second, first];
    await sleep(60);
    assert.ok((await verifier.verify(await tokenBy(second))).claims, 'the new kid is found by a refetch');
    assert.ok((await verifier.verify(await tokenBy(first))).claims, 'the old key is still in the fetched set');
    assert.equal(rotating.hits.jwks, 2);
    // The old key is retired: its tokens are refused once the set is fetched again.
    rotating.keys = [second];
    await sleep(60);
    assert.match((await verifier.verify(await sign(stranger, claims({ iss: rotating.url })))).refusal, /no key/);
    assert.match((await verifier.verify(await tokenBy(first))).refusal, /no key/);
    assert.equal(rotating.hits.jwks, 3);
  } finally {
    await rotating.close();
  }
});

test('unknown kids refetch the JWKS at most once per cooldown', async () => {
  const guarded = await startIssuer();
  guarded.keys = [key];
  const verifier = createAuthorizer({ issuer: guarded.url, audiences: [AUDIENCE], cooldownMs: 60_000, log: () => {} });
  try {
    assert.ok((await verifier.verify(await sign(key, claims({ iss: guarded.url })))).claims);
    for (let i = 0; i < 10; i += 1) {
      const forged = await sign(stranger, claims({ iss: guarded.url }), { kid: `forged-${i}` });
      assert.match((await verifier.verify(forged)).refusal, /no key/);
    }
    assert.equal(guarded.hits.jwks, 1, 'no refetch within the cooldown');
  } finally {
    await guarded.close();
  }
});

test('an issuer that cannot be reached refuses tokens, says so in the log, and is retried', async () => {
  const flaky = await startIssuer({ path: '/auth0-tenant/' });
  flaky.keys = [key];
  flaky.down = true;
  const logged = [];
  const verifier = createAuthorizer({ issuer: flaky.url, audiences: [AUDIENCE], cooldownMs: 50, log: (line) => logged.push(line) });
  const token = await sign(key, claims({ iss: flaky.url }));
  try {
    assert.match((await verifier.verify(token)).refusal, /could not be fetched/);
    assert.match(logged.join('\n'), /discovery document .*openid-configuration: answered 503/);
    assert.match((await verifier.verify(token)).refusal, /could not be fetched/);
    assert.equal(flaky.hits.discovery, 1, 'a down issuer is not asked again within the cooldown');
    flaky.down = false;
    await sleep(60);
    // An issuer with a trailing slash (Auth0's) has its discovery document at one slash.
    assert.ok((await verifier.verify(token)).claims);
    assert.deepEqual(flaky.hits, { discovery: 2, jwks: 1 });
    assert.ok(!logged.join('\n').includes(token), 'tokens never reach the log');
  } finally {
    await flaky.close();
  }
});
