// The local issuer's key pair (made once, kept, reloaded) and the tokens it mints.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { createLocalIssuer, loadOrCreateSigningKey } from '../src/issuer.js';

const folder = () => mkdtempSync(join(tmpdir(), 'local-issuer-'));

test('the key pair is made on first start, kept for its owner only, and the same one is loaded after', async () => {
  const file = join(folder(), '.local', 'oidc-signing-key.json');
  const made = await loadOrCreateSigningKey(file);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.equal(JSON.parse(readFileSync(file, 'utf8')).kid, made.kid);
  const loaded = await loadOrCreateSigningKey(file);
  assert.equal(loaded.kid, made.kid);
  assert.deepEqual(loaded.publicJwk, made.publicJwk);
  const other = await loadOrCreateSigningKey(join(folder(), 'key.json'));
  assert.notEqual(other.kid, made.kid, 'each new key pair has its own kid');
});

test('a damaged key file is an error that says what to do, not a silent new key', async () => {
  const file = join(folder(), 'key.json');
  writeFileSync(file, '{"kty":"oct","k":"c2VjcmV0"}');
  await assert.rejects(loadOrCreateSigningKey(file), /key\.json is not an RSA private JWK .*delete it/);
  assert.equal(readFileSync(file, 'utf8'), '{"kty":"oct","k":"c2VjcmV0"}');
});

test('minted tokens are RS256 under the key\'s kid, from the issuer to its audience, for 12 hours', async () => {
  const signingKey = await loadOrCreateSigningKey(join(folder(), 'key.json'));
  const issuer = createLocalIssuer({ url: 'http://127.0.0.1:4000/oidc', audience: 'nango-connect-local', signingKey });
  const token = await issuer.mint({ sub: 'ada', org_id: 'acme' });
  assert.deepEqual(decodeProtectedHeader(token), { alg: 'RS256', kid: signingKey.kid, typ: 'JWT' });
  const { payload } = await jwtVerify(token, createLocalJWKSet(issuer.jwks()), {
    issuer: 'http://127.0.0.1:4000/oidc',
    audience: 'nango-connect-local',
  });
  assert.equal(payload.sub, 'ada');
  assert.equal(payload.org_id, 'acme');
  assert.equal(payload.exp - payload.iat, 12 * 3600);
  assert.ok(Math.abs(payload.iat - Date.now() / 1000) < 5);
});
