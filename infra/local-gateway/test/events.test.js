import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stringifyClaims } from '../src/events.js';

test('claims reach the function as strings, as API Gateway passes them', () => {
  assert.deepEqual(stringifyClaims({ sub: 'u1', exp: 1795719600, email_verified: true, groups: ['a', 'b'], address: { country: 'FR' } }), {
    sub: 'u1',
    exp: '1795719600',
    email_verified: 'true',
    groups: '[a b]',
    address: '{"country":"FR"}',
  });
});
