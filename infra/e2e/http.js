// The end-to-end tests' one HTTP helper: a JSON request to the stack, Nango or the emulator, its
// answer parsed, and every answer of the stack's API and webhook receiver checked against
// openapi.yaml (contract.js; /dev/ and /oidc/ routes and other hosts are not in the contract).
import { checkStackAnswer } from './contract.js';

export const stack = process.env.STACK_URL ?? 'http://127.0.0.1:3000';

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
