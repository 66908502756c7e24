// A minimal stand-in for Nango's hosted Connect UI (connect.nango.dev), which is not published
// as a package and cannot be served locally. It speaks the same protocol as the real one:
// - in an iframe opened by @nangohq/frontend's openConnectUI({baseURL, apiURL}), it posts
//   {type:"ready"} to the parent, receives {type:"session_token", sessionToken}, and reports
//   {type:"connect", payload:{providerConfigKey, connectionId}}, {type:"error", payload:{errorType,
//   errorMessage}} and {type:"close"};
// - opened directly from a connect_link, it reads ?session_token=.
// It calls the same endpoints: GET /connect/session, GET /integrations (Bearer session token) and
// POST /api-auth/api-key/{integration}?connect_session_token=... with {"apiKey": "..."}.
// Only API_KEY integrations can be completed here.

export const CONNECT_UI_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Connect (Nango emulator)</title>
<style>
  body { margin: 0; font-family: system-ui, sans-serif; background: rgba(0, 0, 0, 0.4); min-height: 100vh; display: flex; align-items: center; justify-content: center; }
  main { background: #fff; border-radius: 12px; padding: 24px; width: min(420px, 90vw); box-shadow: 0 8px 32px rgba(0, 0, 0, 0.25); }
  header { display: flex; justify-content: space-between; align-items: center; }
  h1 { font-size: 1.2rem; margin: 0; }
  ul { list-style: none; padding: 0; }
  li button, form button { width: 100%; margin: 4px 0; padding: 10px; border-radius: 8px; border: 1px solid #ccc; background: #f7f7f7; cursor: pointer; font-size: 1rem; }
  form button[type=submit] { background: #00b2e3; color: #fff; border: none; }
  input { width: 100%; box-sizing: border-box; padding: 10px; margin: 8px 0; font-size: 1rem; }
  #error { color: #b00020; min-height: 1.2em; }
  .note { color: #666; font-size: 0.8rem; }
</style>
</head>
<body>
<main>
  <header><h1 id="title">Connect an integration</h1><button id="close" type="button" aria-label="Close">&times;</button></header>
  <p id="status">Waiting for a session token…</p>
  <ul id="integrations"></ul>
  <form id="form" hidden>
    <label for="api-key">API key for <strong id="integration-name"></strong></label>
    <input id="api-key" name="apiKey" type="password" autocomplete="off" required>
    <button id="submit" type="submit">Connect</button>
    <button id="back" type="button">Back</button>
  </form>
  <button id="done" type="button" hidden>Finish</button>
  <p id="error" role="alert"></p>
  <p class="note">Nango emulator — local stand-in for Connect UI</p>
</main>
<script type="module">
  const query = new URLSearchParams(location.search);
  const apiURL = (query.get('apiURL') || location.origin).replace(/\\/+$/, '');
  const embedded = window.parent !== window;
  const $ = (id) => document.getElementById(id);
  let token = null;
  let current = null;

  function emit(event) {
    if (embedded) window.parent.postMessage(event, '*');
  }
  function show(text, isError) {
    $(isError ? 'error' : 'status').textContent = text;
    if (!isError) $('error').textContent = '';
  }
  async function api(path, init) {
    const res = await fetch(apiURL + path, init);
    const json = res.status === 204 ? {} : await res.json();
    if (!res.ok) {
      const err = new Error(json.error?.message || json.error?.code || 'request failed');
      err.code = json.error?.code || 'unknown_error';
      throw err;
    }
    return json;
  }

  function openForm(integration) {
    current = integration;
    $('integrations').hidden = true;
    $('form').hidden = false;
    $('integration-name').textContent = integration.display_name;
    $('api-key').value = '';
    $('api-key').focus();
    show('Enter the API key.');
  }

  async function start(sessionToken) {
    token = sessionToken;
    const auth = { headers: { Authorization: 'Bearer ' + token } };
    try {
      const session = (await api('/connect/session', auth)).data;
      const integrations = (await api('/integrations', auth)).data;
      const list = $('integrations');
      list.replaceChildren();
      for (const integration of integrations) {
        const button = document.createElement('button');
        button.type = 'button';
        button.dataset.integration = integration.unique_key;
        button.textContent = integration.display_name;
        button.addEventListener('click', () => openForm(integration));
        const item = document.createElement('li');
        item.append(button);
        list.append(item);
      }
      if (session.isReconnecting && integrations.length === 1) {
        $('title').textContent = 'Reconnect ' + integrations[0].display_name;
        openForm(integrations[0]);
      } else {
        show(integrations.length ? 'Choose an integration.' : 'No integration is available for this session.');
      }
    } catch (err) {
      show(err.message, true);
      emit({ type: 'error', payload: { errorType: err.code, errorMessage: err.message } });
    }
  }

  $('form').addEventListener('submit', async (event) => {
    event.preventDefault();
    $('submit').disabled = true;
    try {
      // Same request as @nangohq/frontend's nango.auth(key, { credentials: { apiKey } }).
      const result = await api('/api-auth/api-key/' + current.unique_key + '?connect_session_token=' + token, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ apiKey: $('api-key').value })
      });
      $('form').hidden = true;
      $('done').hidden = false;
      show('Connected to ' + current.display_name + '.');
      emit({ type: 'connect', payload: { providerConfigKey: result.providerConfigKey, connectionId: result.connectionId } });
    } catch (err) {
      show(err.message, true);
      emit({ type: 'error', payload: { errorType: err.code, errorMessage: err.message } });
    } finally {
      $('submit').disabled = false;
    }
  });
  $('back').addEventListener('click', () => {
    $('form').hidden = true;
    $('integrations').hidden = false;
    show('Choose an integration.');
  });
  $('close').addEventListener('click', () => emit({ type: 'close' }));
  $('done').addEventListener('click', () => emit({ type: 'close' }));
  window.addEventListener('message', (event) => {
    if (event.data && event.data.type === 'session_token' && event.data.sessionToken) start(event.data.sessionToken);
  });

  if (query.get('session_token')) start(query.get('session_token'));
  else emit({ type: 'ready' });
</script>
</body>
</html>
`;
