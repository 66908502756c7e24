// End-to-end check of the demo page against a running local stack (gateway + functions +
// DynamoDB Local + Nango emulator): sign in, connect, see the connection active; make its token
// refresh fail, see it in error, reconnect, see it active again. Everything goes through a real
// Chromium, the real @nangohq/frontend SDK and the emulator's Connect UI iframe.
//
//   STACK_URL=http://127.0.0.1:3000 DEMO_SCREENSHOT=/tmp/demo.png node --test infra/demo/test/
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chromium } from 'playwright-core';

const STACK_URL = (process.env.STACK_URL || 'http://127.0.0.1:3000').replace(/\/+$/, '');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const STEP_MS = 10000;

let browser;
let config;

before(async () => {
  const res = await fetch(`${STACK_URL}/demo-config.json`).catch((err) => {
    throw new Error(`the stack is not running at ${STACK_URL} (${err.message})`);
  });
  assert.equal(res.status, 200, 'GET /demo-config.json');
  config = await res.json();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
  });
});

after(async () => {
  await browser?.close();
});

/** Fills the emulator's Connect UI (in the SDK's iframe) with an API key and submits it. */
async function submitApiKey(ui, apiKey) {
  await ui.locator('#api-key').fill(apiKey);
  await ui.locator('#submit').click();
}

test('sign in, connect, refresh failure, reconnect', { timeout: 60000 }, async (t) => {
  if (!config.emulator) {
    t.skip('the stack uses real Nango: the authorization cannot be automated');
    return;
  }
  const run = `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  const user = { sub: `e2e-${run}`, email: `e2e-${run}@example.com`, name: 'E2E Tester', org: `e2e-org-${run}` };
  const integration = config.integrations?.[0] || 'github';

  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  const pageErrors = [];
  page.on('pageerror', (err) => pageErrors.push(err.message));

  try {
    await page.goto(`${STACK_URL}/`);
    await page.locator('body[data-ready="true"]').waitFor();
    assert.equal(await page.getByTestId('mode').textContent(), 'Nango emulator');

    // 1. Sign in as a fresh user of a fresh organization.
    await page.getByTestId('user-id').fill(user.sub);
    await page.getByTestId('user-email').fill(user.email);
    await page.getByTestId('user-name').fill(user.name);
    await page.getByTestId('user-org').fill(user.org);
    await page.getByTestId('signin').click();
    await page.getByTestId('signed-in-as').filter({ hasText: user.sub }).waitFor();
    await page.getByTestId('connections-empty').filter({ hasText: 'No connections yet' }).waitFor();
    // The page holds an RS256 token from the stack's OIDC issuer; every call below is checked with it.
    const { token } = await page.evaluate(() => JSON.parse(sessionStorage.getItem('nango-connect-demo')));
    assert.equal(JSON.parse(Buffer.from(token.split('.')[0], 'base64url')).alg, 'RS256');

    // 2. Connect: POST /sessions, then the SDK's openConnectUI with the emulator's Connect UI.
    await page.getByTestId('integration').selectOption(integration);
    await page.getByTestId('connect').click();
    const ui = page.frameLocator('iframe#connect-ui');
    await ui.locator(`button[data-integration="${integration}"]`).click();
    // A key the provider rejects: Connect UI reports the error, and the page shows its code.
    await submitApiKey(ui, 'invalid');
    await page.getByTestId('error-code').filter({ hasText: 'connection_test_failed' }).waitFor();
    await submitApiKey(ui, `demo-key-${run}`);
    await ui.locator('#done').click();
    await page.locator('iframe#connect-ui').waitFor({ state: 'detached' });
    assert.equal(await page.getByTestId('message').isVisible(), false, 'the error is cleared after success');

    const item = page.getByTestId('connection').filter({ hasText: integration });
    await page.locator(`[data-testid="connection"][data-status="active"][data-integration-id="${integration}"]`).waitFor();
    assert.equal(await item.count(), 1, 'one connection for this new user');
    const connectionId = await item.getAttribute('data-connection-id');
    assert.ok(connectionId, 'the connection id is shown');
    const connection = page.locator(`[data-testid="connection"][data-connection-id="${connectionId}"]`);
    assert.equal(await connection.getByTestId('connection-status').textContent(), 'active');

    // 3. Nango fails to refresh the token: the webhook marks the connection in error.
    await connection.getByTestId('simulate-failure').click();
    await page.locator(`[data-testid="connection"][data-connection-id="${connectionId}"][data-status="error"]`).waitFor();
    assert.match(await connection.getByTestId('connection-error').textContent(), /invalid_grant/);

    // 4. Reconnect: POST /sessions/reconnect, the same Connect UI opens straight on the key form.
    await connection.getByTestId('reconnect').click();
    await submitApiKey(ui, `demo-key-2-${run}`);
    await ui.locator('#done').click();
    await page.locator(`[data-testid="connection"][data-connection-id="${connectionId}"][data-status="active"]`).waitFor();
    assert.equal(await connection.getByTestId('connection-error').count(), 0, 'no error once active');
    assert.equal(await page.getByTestId('connection').count(), 1, 'reconnecting does not add a connection');
    assert.deepEqual(pageErrors, []);
  } finally {
    if (process.env.DEMO_SCREENSHOT) await page.screenshot({ path: process.env.DEMO_SCREENSHOT, fullPage: true }).catch(() => {});
    await context.close();
  }
});
