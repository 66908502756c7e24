// Every answer the end-to-end tests get from the stack's API and webhook receiver must be one
// openapi.yaml describes (infra/openapi/contract.js says what that means). Answers of the local
// extras (/dev/token, the local OIDC issuer under /oidc, the demo's files) and of Nango are not
// part of the contract.
import { Contract } from '../openapi/contract.js';

const WEBHOOK_PATH = '/webhooks/nango';
const contract = new Contract();

/** Throws a ContractError if `url`, a URL of the stack at `stack`, got an answer the document does not describe. */
export function checkStackAnswer(stack, method, url, response, body) {
  if (!url.startsWith(`${stack}/`)) return;
  const { pathname } = new URL(url);
  if (pathname.startsWith('/dev/') || pathname.startsWith('/oidc/')) return;
  const to = pathname === WEBHOOK_PATH || pathname.startsWith(`${WEBHOOK_PATH}/`) ? { webhook: 'nango' } : pathname;
  contract.check({ method, to, status: response.status, headers: Object.fromEntries(response.headers), body });
}
