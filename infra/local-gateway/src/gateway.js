// The HTTP front of the local stack, behaving as the deployed edges do:
// - API Gateway HTTP API: three routes behind a JWT authorizer (401 {"message":"Unauthorized"}
//   before the function is called), CORS limited to the allowed origins, 404 for other routes;
// - the webhook receiver's function URL, at /webhooks/nango (any path below it, no authorizer);
// - local-only extras: the local OIDC issuer's discovery document and JWKS and POST /dev/token
//   (unless the gateway checks a real issuer's tokens), POST /dev/reconcile (runs the scheduled
//   reconciliation now), GET /dev/functions (each function's sandboxes: starts, crashes,
//   throttles, each process id and whether it is mid-invocation), GET /dev/metrics (the totals of
//   the metrics the functions' EMF lines carry, as CloudWatch would extract them; DELETE resets),
//   /demo-config.json, the demo page's static files, and the API reference
//   (/api-reference/, over /openapi.yaml).
import { createServer } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { extname, join, resolve, sep } from 'node:path';
import { httpEvent, stringifyClaims } from './events.js';
import { DISCOVERY_PATH, JWKS_PATH } from './issuer.js';

export const API_ROUTES = [
  { method: 'POST', path: '/sessions', fn: 'create-session' },
  { method: 'POST', path: '/sessions/reconnect', fn: 'reconnect-session' },
  { method: 'GET', path: '/connections', fn: 'list-connections' },
  { method: 'DELETE', path: '/connections/{connectionId}', fn: 'delete-connection' },
];

/** The route's path parameters when `pathname` matches its path, else null: `{name}` is one
 * whole segment, URL-decoded as API Gateway hands it over. */
export function matchPath(path, pathname) {
  const want = path.split('/');
  const got = pathname.split('/');
  if (want.length !== got.length) return null;
  const params = {};
  for (const [i, segment] of want.entries()) {
    const name = /^\{(\w+)\}$/.exec(segment)?.[1];
    if (name) {
      if (!got[i]) return null;
      try {
        params[name] = decodeURIComponent(got[i]);
      } catch {
        return null;
      }
    } else if (segment !== got[i]) return null;
  }
  return params;
}
const WEBHOOK_PATH = '/webhooks/nango';
const MAX_BODY = 6 * 1024 * 1024; // Lambda's invocation payload limit
const CONTENT_TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.map': 'application/json',
  '.yaml': 'application/yaml',
};

// authorizer: checks bearer tokens (authorizer.js); localIssuer: the stack's own issuer
// (issuer.js), or null when the authorizer trusts a real one.
// metrics: the MetricsCollector (metrics.js) the functions' lines go to, or null.
export function createGateway({ functions, authorizer, localIssuer, allowedOrigins, staticRoots, demoConfig, metrics = null, log = console.log }) {
  const issuerPath = localIssuer ? new URL(localIssuer.url).pathname.replace(/\/+$/, '') : null;
  const json = (res, status, body, headers = {}) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(body));
  };

  const corsHeaders = (origin) =>
    origin && allowedOrigins.includes(origin)
      ? { 'access-control-allow-origin': origin, 'access-control-expose-headers': 'retry-after', vary: 'Origin' }
      : {};

  // When every sandbox of the function is busy at its maximum, Lambda throttles the invocation,
  // and each front answers as it does in AWS:
  // - the HTTP API: "If the Lambda API rejects the invocation request, API Gateway returns a 500
  //   error code" with {"message": "Internal server error"} (AWS Lambda Developer Guide, "Handling
  //   Lambda errors with an API Gateway API",
  //   https://docs.aws.amazon.com/lambda/latest/dg/services-apigateway-errors.html); an HTTP API
  //   writes it "Internal Server Error", as for any other integration failure. Not a 429: API
  //   Gateway's 429 {"message":"Too Many Requests"} is its own stage throttle, not Lambda's.
  // - a function URL: Lambda's own answer, 429 TooManyRequestsException (the Lambda API's error:
  //   Type, message, Reason ReservedFunctionConcurrentInvocationLimitExceeded; see
  //   https://docs.aws.amazon.com/botocore/latest/reference/services/lambda/client/exceptions/TooManyRequestsException.html).
  // Locally only, `x-local-gateway-throttled` names the function, so that a test can tell a
  // throttle from a function's failure; AWS sends no such header.
  async function invoke(res, fn, event, extraHeaders, { functionUrl = false } = {}) {
    let result;
    try {
      result = await functions[fn].invoke(event);
    } catch (error) {
      log(`[gateway] ${error.message}`);
      if (error.throttled && functionUrl) {
        return json(res, 429, { Reason: 'ReservedFunctionConcurrentInvocationLimitExceeded', Type: 'User', message: 'Rate Exceeded.' }, {
          ...extraHeaders, 'x-amzn-errortype': 'TooManyRequestsException', 'x-local-gateway-throttled': fn,
        });
      }
      const throttled = error.throttled ? { 'x-local-gateway-throttled': fn } : {};
      return json(res, 500, { message: 'Internal Server Error' }, { ...extraHeaders, ...throttled });
    }
    const headers = { ...(result.headers ?? {}), ...extraHeaders };
    for (const [name, values] of Object.entries(result.multiValueHeaders ?? {})) headers[name] = values;
    if (result.cookies?.length) headers['set-cookie'] = result.cookies;
    const body = result.body ?? '';
    res.writeHead(result.statusCode ?? 200, headers);
    res.end(result.isBase64Encoded ? Buffer.from(body, 'base64') : body);
  }

  async function serveStatic(res, pathname) {
    for (const { prefix, dir, only } of staticRoots) {
      let file;
      if (only) {
        if (pathname !== prefix) continue;
        file = only;
      } else {
        if (!pathname.startsWith(prefix)) continue;
        const relative = decodeURIComponent(pathname.slice(prefix.length)) || 'index.html';
        file = resolve(dir, relative);
        if (!file.startsWith(resolve(dir) + sep)) break;
      }
      try {
        if (!(await stat(file)).isFile()) continue;
        res.writeHead(200, {
          'content-type': CONTENT_TYPES[extname(file)] ?? 'application/octet-stream',
          'cache-control': 'no-cache',
        });
        return res.end(await readFile(file));
      } catch {
        continue;
      }
    }
    json(res, 404, { message: 'Not Found' });
  }

  async function handle(req, res, body) {
    const url = new URL(req.url, 'http://localhost');
    const origin = req.headers.origin;
    const cors = corsHeaders(origin);
    const isApi = API_ROUTES.some((route) => matchPath(route.path, url.pathname)) || url.pathname === '/dev/token';

    if (req.method === 'OPTIONS' && isApi && req.headers['access-control-request-method']) {
      // A preflight is answered by API Gateway itself, never by a function.
      if (!cors['access-control-allow-origin']) return res.writeHead(204).end();
      return res
        .writeHead(204, {
          ...cors,
          'access-control-allow-methods': 'GET,POST,DELETE,OPTIONS',
          'access-control-allow-headers': 'authorization,content-type',
          'access-control-max-age': '600',
        })
        .end();
    }

    if (url.pathname === WEBHOOK_PATH || url.pathname.startsWith(`${WEBHOOK_PATH}/`)) {
      const event = httpEvent(req, body, { routeKey: '$default', claims: null, domainName: 'webhook.lambda-url.local' });
      return invoke(res, 'webhook-receiver', event, {}, { functionUrl: true });
    }

    const route = API_ROUTES.find((r) => r.method === req.method && matchPath(r.path, url.pathname));
    if (route) {
      // The identity source may hold the token alone or after "Bearer", as API Gateway reads it.
      const token = (req.headers.authorization ?? '').replace(/^Bearer\s+/i, '').trim();
      if (!token) return json(res, 401, { message: 'Unauthorized' }, { ...cors, 'www-authenticate': 'Bearer' });
      const verdict = await authorizer.verify(token);
      if (verdict.refusal) {
        log(`[gateway] 401 ${req.method} ${url.pathname}: ${verdict.refusal}`);
        return json(res, 401, { message: 'Unauthorized' }, {
          ...cors,
          'www-authenticate': `Bearer scope="" error="invalid_token" error_description="${verdict.refusal}"`,
        });
      }
      const event = httpEvent(req, body, {
        routeKey: `${route.method} ${route.path}`,
        claims: stringifyClaims(verdict.claims),
        domainName: 'api.execute-api.local',
        pathParameters: matchPath(route.path, url.pathname),
      });
      return invoke(res, route.fn, event, cors);
    }

    if (localIssuer && req.method === 'GET' && url.pathname === `${issuerPath}${DISCOVERY_PATH}`) {
      return json(res, 200, localIssuer.discovery());
    }
    if (localIssuer && req.method === 'GET' && url.pathname === `${issuerPath}${JWKS_PATH}`) {
      return json(res, 200, localIssuer.jwks(), { 'content-type': 'application/jwk-set+json' });
    }

    if (url.pathname === '/dev/token' && req.method === 'POST') {
      if (!localIssuer) {
        const message =
          `Dev tokens are off: this gateway accepts only tokens from ${authorizer.issuer} (JWT_ISSUER). ` +
          'Sign in with that identity provider and send its token as "Authorization: Bearer <token>".';
        return json(res, 404, { error: { code: 'dev_tokens_off', message } }, cors);
      }
      let claims;
      try {
        claims = JSON.parse(body.toString() || '{}');
      } catch {
        return json(res, 400, { error: { code: 'invalid_body', message: 'The body is not JSON.' } }, cors);
      }
      if (typeof claims.sub !== 'string' || !claims.sub.trim()) {
        return json(res, 400, { error: { code: 'invalid_body', message: '"sub" is required.' } }, cors);
      }
      const picked = {};
      for (const name of ['sub', 'email', 'name', 'org_id']) {
        if (typeof claims[name] === 'string' && claims[name].trim()) picked[name] = claims[name].trim();
      }
      return json(res, 200, { token: await localIssuer.mint(picked) }, cors);
    }

    // Deployed, EventBridge Scheduler invokes it (or `aws lambda invoke`); here, this does.
    if (url.pathname === '/dev/reconcile' && req.method === 'POST') {
      if (!functions['reconcile-connections']) return json(res, 404, { message: 'Not Found' });
      try {
        // Deployed, the schedule invokes it asynchronously, and Lambda retries a throttled
        // asynchronous invocation later: here, the request waits for a free sandbox.
        const summary = await functions['reconcile-connections'].invokeWhenFree({ source: 'local-gateway', 'detail-type': 'on demand' });
        return json(res, 200, summary);
      } catch (error) {
        log(`[gateway] ${error.message}`);
        return json(res, 502, { message: error.message });
      }
    }

    if (url.pathname === '/dev/functions' && req.method === 'GET') {
      return json(res, 200, Object.fromEntries(Object.entries(functions).map(([name, fn]) => [name, fn.status()])));
    }

    if (url.pathname === '/dev/metrics' && metrics) {
      if (req.method === 'GET') return json(res, 200, metrics.snapshot());
      if (req.method === 'DELETE') {
        metrics.reset();
        return res.writeHead(204).end();
      }
    }

    if (url.pathname === '/demo-config.json' && req.method === 'GET') return json(res, 200, demoConfig);
    if (req.method === 'GET' && !isApi) return serveStatic(res, url.pathname);
    return json(res, 404, { message: 'Not Found' }, cors);
  }

  return createServer((req, res) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        json(res, 413, { message: 'Request Entity Too Large' });
        req.destroy();
      } else chunks.push(chunk);
    });
    req.on('end', () => {
      handle(req, res, Buffer.concat(chunks)).catch((error) => {
        log(`[gateway] ${error.stack ?? error}`);
        if (!res.headersSent) json(res, 500, { message: 'Internal Server Error' });
      });
    });
  });
}

export function staticRoot(prefix, ...dir) {
  return { prefix, dir: join(...dir) };
}

/** One file at one path, and nothing beside it (e.g. /openapi.yaml from the repository's root). */
export function staticFile(path, ...file) {
  return { prefix: path, only: join(...file) };
}
