// The demo page: sign in as a demo user, get a Connect session from the backend, authorize
// through Nango's frontend SDK (its Connect UI, or the app's own API-key form), and watch the
// connection list the webhooks keep up to date; delete connections through the backend.
// Plain ES module, no bundler: the SDK's dist files are served as-is under /vendor/nango/.
import Nango from '/vendor/nango/index.js';

const PRESETS = [
  { label: 'Ada (Acme)', sub: 'ada', email: 'ada@acme.example', name: 'Ada Lovelace', org_id: 'acme' },
  { label: 'Grace (Acme)', sub: 'grace', email: 'grace@acme.example', name: 'Grace Hopper', org_id: 'acme' }
];
const POLL_EVERY_MS = 1500;
const POLL_FOR_MS = 20000;
const STORAGE_KEY = 'nango-connect-demo';
// Small on purpose, so that "More" (which follows the API's nextCursor) shows after a few connections.
const PAGE_SIZE = 10;

const $ = (id) => document.getElementById(id);
const state = {
  config: null,
  token: null,
  identity: null,
  pollUntil: 0,
  pollTimer: null,
  connectUI: null,
  busy: false,
  waitingFor: null,
  // How many pages of GET /connections the list shows; "More" adds one. Every refresh reads them
  // again from the first, so polling neither collapses the list nor misses new connections.
  pages: 1,
  // Numbers each list load, so that a slow answer never overwrites a newer one.
  loadSeq: 0
};

// ---------- messages ----------

function showError(code, message) {
  const box = $('message');
  box.className = 'message error';
  box.replaceChildren();
  const strong = document.createElement('strong');
  strong.dataset.testid = 'error-code';
  strong.textContent = code;
  const text = document.createElement('span');
  text.dataset.testid = 'error-message';
  text.textContent = message ? ` — ${message}` : '';
  box.append(strong, text);
  box.hidden = false;
}

function clearMessage() {
  $('message').hidden = true;
  $('message').replaceChildren();
}

function setStatus(text) {
  $('connect-status').textContent = text;
}

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function reportError(err) {
  if (err instanceof ApiError) showError(`${err.status} ${err.code}`, err.message);
  else showError(err.type || err.code || 'error', err.message || String(err));
}

// ---------- HTTP ----------

async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(state.config.apiBase + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    throw new ApiError(0, 'network_error', `${method} ${path}: ${err.message}`);
  }
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    // not JSON: reported below with the raw text
  }
  if (!res.ok) {
    if (json?.error?.code) throw new ApiError(res.status, json.error.code, json.error.message || '');
    if (res.status === 401) throw new ApiError(401, 'unauthorized', json?.message || 'Unauthorized');
    throw new ApiError(res.status, 'http_error', json?.message || text.slice(0, 200) || res.statusText);
  }
  return json;
}

// ---------- sign in ----------

function fillForm(identity) {
  const form = $('signin-form');
  for (const key of ['sub', 'email', 'name', 'org_id']) form.elements[key].value = identity[key] || '';
}

function renderIdentity() {
  const signedIn = Boolean(state.token);
  $('signin-form').hidden = signedIn;
  $('presets').hidden = signedIn;
  $('signed-in').hidden = !signedIn;
  $('refresh').disabled = !signedIn;
  $('connect-form').querySelector('button').disabled = !signedIn || state.busy;
  $('apikey-form').querySelector('button').disabled = !signedIn || state.busy;
  if (signedIn) {
    const { sub, name, email, org_id: org } = state.identity;
    $('who').textContent = name ? `${name} (${sub})` : sub;
    $('who-org').textContent = [email, org ? `org ${org}` : 'no organization'].filter(Boolean).join(' · ');
  } else {
    $('connections').replaceChildren();
    $('more').hidden = true;
    $('empty').textContent = 'Sign in to see your connections.';
    $('empty').hidden = false;
    setStatus('');
  }
}

async function signIn(event) {
  event.preventDefault();
  clearMessage();
  const form = new FormData($('signin-form'));
  const identity = {};
  for (const [key, value] of form) if (String(value).trim()) identity[key] = String(value).trim();
  const button = $('signin-form').querySelector('button');
  button.disabled = true;
  try {
    state.token = null;
    const { token } = await api('POST', '/dev/token', identity);
    state.token = token;
    state.identity = identity;
    state.pages = 1;
    sessionStorage.setItem(STORAGE_KEY, JSON.stringify({ token, identity }));
    renderIdentity();
    await loadConnections();
  } catch (err) {
    reportError(err);
  } finally {
    button.disabled = false;
  }
}

function signOut() {
  state.token = null;
  state.identity = null;
  state.pollUntil = 0;
  sessionStorage.removeItem(STORAGE_KEY);
  state.connectUI?.close();
  state.connectUI = null;
  state.busy = false;
  state.waitingFor = null;
  state.pages = 1;
  clearMessage();
  renderIdentity();
}

// ---------- connections ----------

function formatTime(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

function button(label, testid, onClick, className) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = label;
  b.dataset.testid = testid;
  if (className) b.className = className;
  b.addEventListener('click', onClick);
  return b;
}

function renderConnections(connections, hasMore) {
  const list = $('connections');
  list.replaceChildren();
  $('empty').hidden = connections.length > 0;
  $('empty').textContent = 'No connections yet. Connect an integration above.';
  for (const c of connections) {
    const item = document.createElement('li');
    item.className = `connection ${c.status}`;
    item.dataset.testid = 'connection';
    item.dataset.connectionId = c.connectionId;
    item.dataset.integrationId = c.integrationId;
    item.dataset.status = c.status;

    const main = document.createElement('div');
    main.className = 'connection-main';
    const title = document.createElement('div');
    title.className = 'connection-title';
    const name = document.createElement('strong');
    name.textContent = c.integrationId;
    const provider = document.createElement('span');
    provider.className = 'muted small';
    provider.textContent = c.provider && c.provider !== c.integrationId ? c.provider : '';
    const badge = document.createElement('span');
    badge.className = `badge ${c.status}`;
    badge.dataset.testid = 'connection-status';
    badge.textContent = c.status;
    title.append(name, provider, badge);

    const meta = document.createElement('div');
    meta.className = 'muted small';
    const id = document.createElement('code');
    id.textContent = c.connectionId;
    id.dataset.testid = 'connection-id';
    meta.append(id, ` · created ${formatTime(c.createdAt)} · updated ${formatTime(c.updatedAt)}`);
    main.append(title, meta);

    if (c.error) {
      const error = document.createElement('div');
      error.className = 'connection-error';
      error.dataset.testid = 'connection-error';
      error.textContent = [c.error.type, c.error.description].filter(Boolean).join(': ');
      main.append(error);
    }

    const actions = document.createElement('div');
    actions.className = 'connection-actions';
    if (c.status === 'error') actions.append(button('Reconnect', 'reconnect', () => reconnect(c), 'primary'));
    if (state.config.emulator && c.status === 'active') {
      actions.append(button('Simulate refresh failure', 'simulate-failure', () => simulateFailure(c), 'subtle'));
    }
    actions.append(button('Delete', 'delete', (event) => deleteConnection(c, event.currentTarget), 'danger'));
    item.append(main, actions);
    list.append(item);
  }
  $('more').hidden = !hasMore;
}

/** The first `state.pages` pages of GET /connections, following each answer's nextCursor. */
async function fetchPages() {
  const connections = [];
  let cursor = null;
  for (let page = 0; page < state.pages; page++) {
    const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (cursor) query.set('cursor', cursor);
    const answer = await api('GET', `/connections?${query}`);
    connections.push(...answer.connections);
    cursor = answer.nextCursor ?? null;
    if (!cursor) break;
  }
  return { connections, hasMore: Boolean(cursor) };
}

async function loadConnections() {
  if (!state.token) return;
  const seq = ++state.loadSeq;
  try {
    const { connections, hasMore } = await fetchPages();
    if (seq !== state.loadSeq || !state.token) return;
    renderConnections(connections, hasMore);
    const waited = state.waitingFor && connections.find((c) => c.connectionId === state.waitingFor.connectionId);
    if (waited && waited.status === state.waitingFor.status) {
      setStatus(state.waitingFor.done);
      state.waitingFor = null;
    }
  } catch (err) {
    reportError(err);
    if (err.status === 401) state.pollUntil = 0;
  }
}

/** Refreshes the list every POLL_EVERY_MS for a while: webhooks land a moment after an action. */
function pollForAWhile() {
  state.pollUntil = Date.now() + POLL_FOR_MS;
  if (state.pollTimer) return;
  $('polling').hidden = false;
  const tick = async () => {
    await loadConnections();
    if (Date.now() < state.pollUntil && state.token) {
      state.pollTimer = setTimeout(tick, POLL_EVERY_MS);
    } else {
      state.pollTimer = null;
      $('polling').hidden = true;
    }
  };
  state.pollTimer = setTimeout(tick, POLL_EVERY_MS);
}

// ---------- authorization ----------

function onConnectEvent(event) {
  switch (event.type) {
    case 'connect': {
      const { providerConfigKey = '', connectionId = '' } = event.payload || {};
      setStatus(`Authorized ${providerConfigKey} (${connectionId}). Waiting for Nango's webhook…`);
      state.waitingFor = { connectionId, status: 'active', done: `${providerConfigKey} is connected (${connectionId}).` };
      clearMessage();
      pollForAWhile();
      break;
    }
    case 'error':
      showError(event.payload?.errorType || 'connect_ui_error', event.payload?.errorMessage || '');
      break;
    case 'close':
      state.connectUI = null;
      state.busy = false;
      renderIdentity();
      if (!state.waitingFor && $('connect-status').textContent.endsWith('Connect UI.')) setStatus('Connect UI closed.');
      pollForAWhile();
      break;
    default:
      break;
  }
}

/** Completes an authorization with a Connect session token, through Nango's Connect UI. */
function authorize(sessionToken) {
  const { config } = state;
  const nango = new Nango({ connectSessionToken: sessionToken, ...(config.nangoHost ? { host: config.nangoHost } : {}) });
  const params = { onEvent: onConnectEvent };
  if (config.emulator && config.connectUiUrl) {
    // The emulator's stand-in Connect UI, speaking the same iframe protocol as connect.nango.dev.
    params.baseURL = config.connectUiUrl;
    params.apiURL = config.nangoHost;
  } else if (config.nangoHost) {
    params.apiURL = config.nangoHost;
  }
  state.connectUI = nango.openConnectUI(params);
}

async function startSession(path, body, label) {
  if (state.busy) return;
  clearMessage();
  state.busy = true;
  state.waitingFor = null;
  renderIdentity();
  setStatus(`${label}: asking the backend for a session…`);
  try {
    const { sessionToken } = await api('POST', path, body);
    setStatus(`${label}: complete the authorization in Nango's Connect UI.`);
    authorize(sessionToken);
  } catch (err) {
    state.busy = false;
    renderIdentity();
    setStatus('');
    reportError(err);
  }
}

/**
 * The guide's other frontend option: the app's own form for an API-key integration. The backend
 * still creates the Connect session; the key goes from the browser straight to Nango through the
 * SDK's auth(), never through the backend.
 */
async function connectWithApiKey(event) {
  event.preventDefault();
  if (state.busy) return;
  const form = $('apikey-form');
  const integration = form.elements.integration.value;
  const apiKey = form.elements.apiKey.value;
  clearMessage();
  state.busy = true;
  state.waitingFor = null;
  renderIdentity();
  setStatus(`Connect ${integration} with an API key: asking the backend for a session…`);
  try {
    const { sessionToken } = await api('POST', '/sessions', { allowedIntegrations: [integration] });
    setStatus(`Connect ${integration} with an API key: Nango is checking the key…`);
    const nango = new Nango({ connectSessionToken: sessionToken, ...(state.config.nangoHost ? { host: state.config.nangoHost } : {}) });
    const { connectionId, providerConfigKey } = await nango.auth(integration, { credentials: { apiKey } });
    form.elements.apiKey.value = '';
    setStatus(`Authorized ${providerConfigKey} (${connectionId}). Waiting for Nango's webhook…`);
    state.waitingFor = { connectionId, status: 'active', done: `${providerConfigKey} is connected (${connectionId}).` };
    pollForAWhile();
  } catch (err) {
    // The SDK's AuthError carries Nango's error code in `type` (connection_test_failed, ...).
    setStatus('');
    reportError(err);
  } finally {
    state.busy = false;
    renderIdentity();
  }
}

async function deleteConnection(connection, deleteButton) {
  clearMessage();
  deleteButton.disabled = true;
  setStatus(`Deleting ${connection.integrationId} (${connection.connectionId})…`);
  try {
    await api('DELETE', `/connections/${encodeURIComponent(connection.connectionId)}`);
    setStatus(`Deleted ${connection.integrationId} (${connection.connectionId}).`);
  } catch (err) {
    setStatus('');
    reportError(err);
  }
  // Either way the list shows what the backend now holds (after a 404 the connection is gone too).
  if (state.waitingFor?.connectionId === connection.connectionId) state.waitingFor = null;
  await loadConnections();
}

function connect(event) {
  event.preventDefault();
  const integration = $('integration').value;
  const label = integration ? `Connect ${integration}` : 'Connect';
  return startSession('/sessions', integration ? { allowedIntegrations: [integration] } : {}, label);
}

function reconnect(connection) {
  return startSession('/sessions/reconnect', { connectionId: connection.connectionId }, `Reconnect ${connection.integrationId}`);
}

async function simulateFailure(connection) {
  clearMessage();
  const url = `${state.config.nangoHost}/_emulator/connections/${encodeURIComponent(connection.connectionId)}/refresh-failure` +
    `?provider_config_key=${encodeURIComponent(connection.integrationId)}`;
  try {
    const res = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' });
    if (!res.ok) {
      const json = await res.json().catch(() => null);
      throw new ApiError(res.status, json?.error?.code || 'emulator_error', json?.error?.message || res.statusText);
    }
    setStatus(`Nango reported a failed token refresh for ${connection.integrationId}; waiting for the webhook…`);
    state.waitingFor = { connectionId: connection.connectionId, status: 'error', done: `${connection.integrationId} is in error: reconnect it.` };
    pollForAWhile();
  } catch (err) {
    reportError(err instanceof ApiError ? err : new ApiError(0, 'network_error', err.message));
  }
}

// ---------- start ----------

async function start() {
  try {
    const res = await fetch('/demo-config.json');
    if (!res.ok) throw new Error(`GET /demo-config.json: ${res.status}`);
    state.config = await res.json();
  } catch (err) {
    showError('config_unavailable', err.message);
    return;
  }
  const { config } = state;
  config.apiBase = (config.apiBase || location.origin).replace(/\/+$/, '');
  if (config.nangoHost) config.nangoHost = config.nangoHost.replace(/\/+$/, '');

  const mode = $('mode');
  mode.textContent = config.emulator ? 'Nango emulator' : `Nango: ${config.nangoHost || 'api.nango.dev'}`;
  mode.className = `pill ${config.emulator ? 'emulator' : 'live'}`;
  mode.hidden = false;

  const select = $('integration');
  const any = new Option('Any (choose in Connect UI)', '');
  select.append(any);
  for (const id of config.integrations || []) select.append(new Option(id, id));
  if ((config.integrations || []).length > 0) select.value = config.integrations[0];
  // A free-text field with suggestions: against real Nango the configured list may be empty.
  for (const id of config.integrations || []) $('apikey-integrations').append(new Option(id, id));
  if ((config.integrations || []).length > 0) $('apikey-integration').value = config.integrations[0];

  for (const preset of PRESETS) {
    const b = button(preset.label, `preset-${preset.sub}`, () => fillForm(preset), 'subtle');
    $('presets').append(b);
  }
  fillForm(PRESETS[0]);

  $('signin-form').addEventListener('submit', signIn);
  $('signout').addEventListener('click', signOut);
  $('connect-form').addEventListener('submit', connect);
  $('apikey-form').addEventListener('submit', connectWithApiKey);
  $('more').addEventListener('click', () => {
    clearMessage();
    state.pages += 1;
    loadConnections();
  });
  $('refresh').addEventListener('click', () => {
    clearMessage();
    loadConnections();
  });

  try {
    const saved = JSON.parse(sessionStorage.getItem(STORAGE_KEY) || 'null');
    if (saved?.token && saved.identity) {
      state.token = saved.token;
      state.identity = saved.identity;
    }
  } catch {
    sessionStorage.removeItem(STORAGE_KEY);
  }
  renderIdentity();
  document.body.dataset.ready = 'true';
  await loadConnections();
}

start();
