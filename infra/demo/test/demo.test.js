// End-to-end check of the demo page against a running local stack (gateway + functions +
// DynamoDB Local + Nango emulator): sign in, connect, see the connection active; make its token
// refresh fail, see it in error, reconnect, see it active again. Then the app's own API-key form
// (the SDK's auth()): a rejected key, two connections, one deleted with its button, one deleted
// behind the page's back (the button then shows 404 connection_not_found), and the list's "More".
// Everything goes through a real Chromium, the real @nangohq/frontend SDK and the emulator (its
// Connect UI iframe, its API-key endpoint).
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

/** A fresh page signed in as a fresh user of a fresh organization; returns its bearer token. */
async function signedInPage(user) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  const pageErrors = [];
  page.on('pageerror', (err) => pageErrors.push(err.message));
  await page.goto(`${STACK_URL}/`);
  await page.locator('body[data-ready="true"]').waitFor();
  await page.getByTestId('user-id').fill(user.sub);
  await page.getByTestId('user-email').fill(user.email);
  await page.getByTestId('user-name').fill(user.name);
  await page.getByTestId('user-org').fill(user.org);
  await page.getByTestId('signin').click();
  await page.getByTestId('signed-in-as').filter({ hasText: user.sub }).waitFor();
  await page.getByTestId('connections-empty').filter({ hasText: 'No connections yet' }).waitFor();
  const { token } = await page.evaluate(() => JSON.parse(sessionStorage.getItem('nango-connect-demo')));
  return { context, page, pageErrors, token };
}

function freshUser() {
  const run = `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  return { run, sub: `e2e-${run}`, email: `e2e-${run}@example.com`, name: 'E2E Tester', org: `e2e-org-${run}` };
}

/** The stack's API with a bearer token, from the test (not the page). */
async function api(method, path, token) {
  const res = await fetch(`${STACK_URL}${path}`, { method, headers: { authorization: `Bearer ${token}` } });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** The emulator's own record of a connection (GET /_emulator/connections, its truth listing). */
async function emulatorTruth(connectionId) {
  const res = await fetch(`${config.nangoHost}/_emulator/connections?connectionId=${encodeURIComponent(connectionId)}`);
  assert.equal(res.status, 200);
  const { connections } = await res.json();
  assert.equal(connections.length, 1, `the emulator knows ${connectionId}`);
  return connections[0];
}

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
  const user = freshUser();
  const { run } = user;
  const integration = config.integrations?.[0] || 'github';

  // 1. Sign in as a fresh user of a fresh organization.
  const { context, page, pageErrors, token } = await signedInPage(user);

  try {
    assert.equal(await page.getByTestId('mode').textContent(), 'Nango emulator');
    // The page holds an RS256 token from the stack's OIDC issuer; every call below is checked with it.
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

/** Fills the page's own API-key form and submits it (the SDK's nango.auth() with the session token). */
async function submitOwnForm(page, integration, apiKey) {
  await page.getByTestId('apikey-integration').fill(integration);
  await page.getByTestId('apikey').fill(apiKey);
  await page.getByTestId('apikey-connect').click();
}

test('own API-key form, delete, delete of a connection already gone, More', { timeout: 90000 }, async (t) => {
  if (!config.emulator) {
    t.skip('the stack uses real Nango: the authorization cannot be automated');
    return;
  }
  const user = freshUser();
  const integration = config.integrations?.[0] || 'github';
  const { context, page, pageErrors, token } = await signedInPage(user);
  const row = (id, status) =>
    page.locator(`[data-testid="connection"][data-connection-id="${id}"]${status ? `[data-status="${status}"]` : ''}`);

  try {
    // 1. A key the provider rejects: Nango's error code is shown, and nothing is connected.
    await submitOwnForm(page, integration, 'invalid');
    await page.getByTestId('error-code').filter({ hasText: 'connection_test_failed' }).waitFor();
    assert.match(await page.getByTestId('error-message').textContent(), /credentials were found to be invalid/);
    assert.equal(await page.getByTestId('connection').count(), 0);
    assert.equal(await page.getByTestId('apikey-connect').isEnabled(), true, 'the form can be used again');

    // 2. Good keys: two connections, listed once their creation webhooks have landed.
    const ids = [];
    for (const key of [`own-form-key-1-${user.run}`, `own-form-key-2-${user.run}`]) {
      await submitOwnForm(page, integration, key);
      await page.getByTestId('connect-status').filter({ hasText: `${integration} is connected` }).waitFor();
      const status = await page.getByTestId('connect-status').textContent();
      const id = status.match(/\(([^)]+)\)/)?.[1];
      assert.ok(id, `the status names the new connection: ${status}`);
      await row(id, 'active').waitFor();
      assert.equal(await page.getByTestId('apikey').inputValue(), '', 'the key is not left in the form');
      ids.push(id);
    }
    assert.equal(await page.getByTestId('message').isVisible(), false, 'the earlier error is cleared');
    assert.notEqual(ids[0], ids[1]);
    assert.equal(await page.getByTestId('connection').count(), 2);
    // Nango holds the key the form sent, under the owner the backend's session tagged.
    const inNango = await emulatorTruth(ids[0]);
    assert.equal(inNango.tags.end_user_id, user.sub);
    assert.equal(inNango.deleted, false);

    // 3. Delete: 204, the list refreshes without it, and Nango no longer has it.
    await row(ids[0]).getByTestId('delete').click();
    await row(ids[0]).waitFor({ state: 'detached' });
    await page.getByTestId('connect-status').filter({ hasText: `Deleted ${integration} (${ids[0]})` }).waitFor();
    assert.equal(await page.getByTestId('message').isVisible(), false);
    assert.equal(await row(ids[1], 'active').count(), 1, 'the other connection stays');
    assert.equal((await emulatorTruth(ids[0])).deleted, true);
    assert.ok(!(await api('GET', '/connections', token)).body.connections.some((c) => c.connectionId === ids[0]));

    // 4. Deleted elsewhere while the page still shows it: the button gets 404 connection_not_found,
    // shows it, and the refreshed list drops the connection.
    assert.equal((await api('DELETE', `/connections/${ids[1]}`, token)).status, 204);
    await row(ids[1]).getByTestId('delete').click();
    await page.getByTestId('error-code').filter({ hasText: '404 connection_not_found' }).waitFor();
    await row(ids[1]).waitFor({ state: 'detached' });
    await page.getByTestId('connections-empty').filter({ hasText: 'No connections yet' }).waitFor();

    // 5. More than a page (the page asks for 10 at a time): "More" follows nextCursor. The 12
    // creation webhooks go out at once; the local gateway runs a few receivers per function, as
    // Lambda runs up to a reserved concurrency, and a throttled webhook is a 429 that Nango never
    // retries. Held to that many in flight, every one is delivered.
    const functions = await (await fetch(`${STACK_URL}/dev/functions`)).json();
    const receivers = functions['webhook-receiver']?.max ?? 1;
    const delivery = (concurrency) => fetch(`${config.nangoHost}/_emulator/webhooks/delivery`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ concurrency })
    });
    assert.equal((await delivery(receivers)).status < 300, true, 'holding webhook deliveries to the receivers');
    t.after(() => delivery(0));
    const seeded = await fetch(`${config.nangoHost}/_emulator/connections`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ integration, count: 12, tags: { end_user_id: user.sub, organization_id: user.org } })
    });
    assert.equal(seeded.status < 300, true, `seeding connections: ${seeded.status}`);
    const deadline = Date.now() + STEP_MS;
    while ((await api('GET', '/connections?limit=100', token)).body.connections.length < 12) {
      assert.ok(Date.now() < deadline, 'the 12 creation webhooks landed');
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    await page.getByTestId('refresh').click();
    await page.getByTestId('more').waitFor();
    assert.equal(await page.getByTestId('connection').count(), 10);
    await page.getByTestId('more').click();
    await page.getByTestId('more').waitFor({ state: 'hidden' });
    const listed = await page.getByTestId('connection').evaluateAll((items) => items.map((i) => i.dataset.connectionId));
    assert.equal(listed.length, 12);
    assert.equal(new Set(listed).size, 12, 'each connection once');
    assert.deepEqual(pageErrors, []);
  } finally {
    if (process.env.DEMO_SCREENSHOT) {
      await page.screenshot({ path: process.env.DEMO_SCREENSHOT.replace(/(\.png)?$/, '-own-form.png'), fullPage: true }).catch(() => {});
    }
    await context.close();
  }
});
