import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mint, stringifyClaims, verify } from '../src/jwt.js';

const options = { issuer: 'http://127.0.0.1:3000/dev', audience: 'nango-connect-local' };

test('a minted token verifies and carries its claims', () => {
  const claims = verify('s3cret', mint('s3cret', { sub: 'u1', org_id: 'o1' }, options), options);
  assert.equal(claims.sub, 'u1');
  assert.equal(claims.org_id, 'o1');
  assert.equal(claims.iss, options.issuer);
});

test('wrong key, issuer, audience, expiry or a tampered payload are refused', () => {
  const token = mint('s3cret', { sub: 'u1' }, options);
  assert.equal(verify('other', token, options), null);
  assert.equal(verify('s3cret', token, { ...options, issuer: 'https://elsewhere' }), null);
  assert.equal(verify('s3cret', token, { ...options, audience: 'other-app' }), null);
  assert.equal(verify('s3cret', mint('s3cret', { sub: 'u1' }, { ...options, lifetimeSeconds: -1 }), options), null);
  const [header, payload, signature] = token.split('.');
  const forged = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload, 'base64url')), sub: 'admin' })).toString('base64url');
  assert.equal(verify('s3cret', `${header}.${forged}.${signature}`, options), null);
  assert.equal(verify('s3cret', 'not-a-token', options), null);
});

test('an unsigned token (alg none) is refused', () => {
  const header = Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url');
  const payload = Buffer.from(JSON.stringify({ sub: 'u1', ...options, exp: 9e9 })).toString('base64url');
  assert.equal(verify('s3cret', `${header}.${payload}.`, options), null);
});

test('claims reach the function as strings, as API Gateway passes them', () => {
  assert.deepEqual(stringifyClaims({ sub: 'u1', exp: 1795719600, email_verified: true, groups: ['a', 'b'] }), {
    sub: 'u1',
    exp: '1795719600',
    email_verified: 'true',
    groups: '[a b]',
  });
});
