// The response checker the end-to-end tests rely on refuses what openapi.yaml does not describe:
// without these tests, a checker that accepted everything would pass every end-to-end test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Contract, ContractError } from '../contract.js';

const contract = new Contract();
const json = { 'content-type': 'application/json' };
const error = (code) => ({ error: { code, message: 'm' } });
const connection = (status, failure) => ({
  connectionId: 'a2968dec', integrationId: 'github', provider: 'github', status, error: failure,
  createdAt: '2026-11-26T10:00:00.000Z', updatedAt: '2026-11-26T10:05:00.000Z',
});

test('described answers pass', () => {
  const answers = [
    { method: 'POST', to: '/sessions', status: 201, headers: json, body: { sessionToken: 'nango_connect_session_x', connectLink: null, expiresAt: '2026-11-26T18:35:00.000Z' } },
    { method: 'POST', to: '/sessions', status: 400, headers: json, body: { error: { code: 'integration_not_allowed', message: 'm', nangoCode: 'invalid_body' } } },
    { method: 'GET', to: '/connections?limit=5&cursor=abc', status: 200, headers: json, body: { connections: [connection('error', { type: 't', description: 'd' })], nextCursor: 'abc' } },
    { method: 'GET', to: '/connections', status: 200, headers: json, body: { connections: [connection('active', null)] } },
    { method: 'GET', to: '/connections', status: 401, headers: { ...json, 'WWW-Authenticate': 'Bearer' }, body: { message: 'Unauthorized' } },
    { method: 'DELETE', to: '/connections/a2968dec', status: 204, headers: {}, body: null },
    { method: 'POST', to: '/sessions/reconnect', status: 503, headers: { ...json, 'retry-after': 'Wed, 21 Oct 2026 07:28:00 GMT' }, body: error('nango_unavailable') },
    { method: 'POST', to: { webhook: 'nango' }, status: 200, headers: json, body: { result: 'ignored' } },
    { method: 'GET', to: { webhook: 'nango' }, status: 405, headers: { ...json, allow: 'POST' }, body: error('method_not_allowed') },
  ];
  for (const answer of answers) contract.check(answer);
});

test('undescribed answers are refused, saying why', () => {
  const cases = [
    [{ method: 'POST', to: '/sessions', status: 404, headers: json, body: error('connection_not_found') }, /describes no 404/],
    [{ method: 'POST', to: '/sessions/reconnect', status: 400, headers: json, body: error('invalid_cursor') }, /allowed values/],
    [{ method: 'POST', to: '/sessions', status: 500, headers: json, body: error('storage_error') }, /message/],
    [{ method: 'GET', to: '/connections', status: 200, headers: json, body: { connections: [], total: 0 } }, /additional properties/],
    [{ method: 'GET', to: '/connections', status: 200, headers: json, body: { connections: [connection('active', { type: 't', description: 'd' })] } }, /connections\/0/],
    [{ method: 'POST', to: '/sessions', status: 201, headers: json, body: { sessionToken: 'x', connectLink: null, expiresAt: 'soon' } }, /date-time/],
    [{ method: 'POST', to: '/sessions', status: 201, headers: { 'content-type': 'text/html' }, body: '<html>' }, /Content-Type/],
    [{ method: 'POST', to: '/sessions', status: 502, headers: { ...json, 'retry-after': '5' }, body: error('nango_rejected') }, /retry-after, which the document does not describe/],
    [{ method: 'POST', to: '/sessions', status: 503, headers: { ...json, 'retry-after': 'soon' }, body: error('nango_unavailable') }, /Retry-After/],
    [{ method: 'GET', to: { webhook: 'nango' }, status: 405, headers: json, body: error('method_not_allowed') }, /Allow is missing/],
    [{ method: 'PUT', to: '/connections', status: 405, headers: { ...json, allow: 'GET, PUT' }, body: error('method_not_allowed') }, /Allow is/],
    [{ method: 'PUT', to: '/connections', status: 404, headers: json, body: { message: 'Not Found' } }, /must be answered 405/],
    [{ method: 'DELETE', to: '/connections/a', status: 204, headers: json, body: {} }, /describes no body/],
    [{ method: 'GET', to: '/dev/token', status: 200, headers: json, body: {} }, /no such path/],
    [{ method: 'POST', to: { webhook: 'github' }, status: 200, headers: json, body: {} }, /no such webhook/],
  ];
  for (const [answer, why] of cases) {
    assert.throws(() => contract.check(answer), (err) => err instanceof ContractError && why.test(err.message), JSON.stringify(answer));
  }
});
