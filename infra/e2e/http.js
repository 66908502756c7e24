// The end-to-end tests' one HTTP helper: a JSON request to the stack, Nango or the emulator, its
// answer parsed, and every answer of the stack's API and webhook receiver checked against
// openapi.yaml (contract.js; /dev/ and /oidc/ routes and other hosts are not in the contract).
import assert from 'node:assert/strict';
import { checkStackAnswer } from './contract.js';

export const stack = process.env.STACK_URL ?? 'http://127.0.0.1:3000';
/** Nango: the emulator, unless NANGO_EMULATOR=0 names a real one (then its controls are absent). */
export const nangoHost = process.env.NANGO_HOST ?? 'http://127.0.0.1:3003';
export const emulated = (process.env.NANGO_EMULATOR ?? '1') === '1';

/** `body` is sent as JSON, or as is when it is already a string. */
export async function call(url, { method = 'GET', token, body, headers = {} } = {}) {
  const all = { 'content-type': 'application/json', ...headers };
  if (token) all.authorization = `Bearer ${token}`;
  const raw = typeof body === 'string' || body === undefined ? body : JSON.stringify(body);
  const response = await fetch(url, { method, headers: all, body: raw });
  const text = await response.text();
  const answer = { status: response.status, body: text ? JSON.parse(text) : null };
  checkStackAnswer(stack, method, url, response, answer.body);
  return answer;
}

/** One of the emulator's controls (`/_emulator/…`); fails the test unless it answers 2xx. */
export async function control(method, path, body) {
  const answer = await call(`${nangoHost}${path}`, { method, body });
  assert.ok(answer.status < 300, `${method} ${path}: ${answer.status} ${JSON.stringify(answer.body)}`);
  return answer.body;
}

/** `probe`'s first truthy value, asked every 100 ms; fails the test after `timeoutMs`. */
export async function until(what, probe, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value) return value;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.fail(`never: ${what}`);
}
