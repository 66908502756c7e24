// Starts the local gateway and the function binaries behind it, and the poller that feeds the
// table's stream to publish-events (as Lambda's event source mapping does when deployed).
// Configuration comes from the environment (scripts/dev sets it); see README.md.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createAuthorizer } from './authorizer.js';
import { createGateway, staticFile, staticRoot } from './gateway.js';
import { createLocalIssuer, generateSigningKey, loadOrCreateSigningKey } from './issuer.js';
import { MetricsCollector } from './metrics.js';
import { DEFAULT_MAX_SANDBOXES, LambdaFunction } from './runtime-api.js';
import { StreamPoller } from './stream-poller.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const env = process.env;
const port = Number(env.GATEWAY_PORT ?? 3000);
const host = '127.0.0.1';
const origin = `http://${host}:${port}`;
const binaries = env.FUNCTIONS_DIR ?? join(repo, 'target', 'debug');
const fail = (message) => {
  console.error(message);
  process.exit(1);
};

// Whose tokens the API accepts: a real OIDC issuer's (JWT_ISSUER and JWT_AUDIENCE, as the SAM
// template's JwtIssuer and JwtAudience), or by default the stack's own issuer, served here under
// /oidc, whose key is kept in LOCAL_ISSUER_KEY_FILE (a new one each start without it).
let localIssuer = null;
let authorizer;
if (env.JWT_ISSUER) {
  const audiences = (env.JWT_AUDIENCE ?? '').split(',').map((a) => a.trim()).filter(Boolean);
  if (!audiences.length) fail('JWT_AUDIENCE is required with JWT_ISSUER (comma separated, as JwtAudience)');
  authorizer = createAuthorizer({ issuer: env.JWT_ISSUER, audiences });
} else {
  const signingKey = env.LOCAL_ISSUER_KEY_FILE
    ? await loadOrCreateSigningKey(env.LOCAL_ISSUER_KEY_FILE).catch((error) => fail(error.message))
    : await generateSigningKey();
  localIssuer = createLocalIssuer({ url: `${origin}/oidc`, audience: 'nango-connect-local', signingKey });
  authorizer = createAuthorizer({ issuer: localIssuer.url, audiences: [localIssuer.audience] });
}

// What each function reads, as the SAM template gives it; the plain variables stand in for
// Secrets Manager locally.
const passed = [
  'NANGO_HOST', 'NANGO_SECRET_KEY', 'NANGO_WEBHOOK_SIGNING_KEY', 'NANGO_ALLOWED_INTEGRATIONS',
  'CONNECTIONS_TABLE', 'END_USER_ID_CLAIM', 'END_USER_EMAIL_CLAIM', 'END_USER_NAME_CLAIM',
  'ORGANIZATION_ID_CLAIM', 'ORGANIZATION_ACCESS', 'AWS_ENDPOINT_URL_DYNAMODB', 'AWS_REGION', 'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY', 'RUST_LOG', 'EVENT_BUS_NAME', 'AWS_ENDPOINT_URL_EVENTBRIDGE',
  'RECONCILE_PAGE_SIZE', 'RECONCILE_MAX_PAGES', 'RECONCILE_MAX_CONFIRMATIONS', 'RECONCILE_GRACE_SECONDS',
  'RATE_LIMIT_TABLE', 'NANGO_REQUESTS_PER_MINUTE', 'NANGO_BURST', 'NANGO_USER_RESERVE',
  'USER_REQUESTS_PER_MINUTE', 'USER_BURST', 'ORGANIZATION_REQUESTS_PER_MINUTE', 'ORGANIZATION_BURST',
  'METRICS_NAMESPACE',
];
const functionEnv = Object.fromEntries(passed.filter((name) => env[name]).map((name) => [name, env[name]]));
// As in template.yaml.
const timeouts = {
  'create-session': 20_000,
  'reconnect-session': 20_000,
  'list-connections': 15_000,
  'delete-connection': 20_000,
  'webhook-receiver': 10_000,
  'publish-events': 30_000,
  'reconcile-connections': 300_000,
};

// How many sandboxes each function may run at once (Lambda's concurrency, per function); past
// that, invocations are throttled (see runtime-api.js and gateway.js).
const maxSandboxes = Number(env.SANDBOXES_PER_FUNCTION || DEFAULT_MAX_SANDBOXES);
if (!Number.isInteger(maxSandboxes) || maxSandboxes < 1) fail(`SANDBOXES_PER_FUNCTION must be a whole number from 1, not ${env.SANDBOXES_PER_FUNCTION}`);
// What the functions' EMF lines would put in CloudWatch (GET /dev/metrics).
const metrics = new MetricsCollector();
const functions = {};
for (const [name, timeoutMs] of Object.entries(timeouts)) {
  functions[name] = new LambdaFunction({ name, binary: join(binaries, name), env: functionEnv, timeoutMs, maxSandboxes, metrics });
}

const demo = join(repo, 'infra', 'demo');
const openapi = join(repo, 'infra', 'openapi');
const gateway = createGateway({
  functions,
  authorizer,
  localIssuer,
  metrics,
  allowedOrigins: (env.ALLOWED_ORIGINS ?? `${origin},http://localhost:${port}`).split(',').map((o) => o.trim()),
  staticRoots: [
    staticRoot('/vendor/nango/', demo, 'node_modules', '@nangohq', 'frontend', 'dist'),
    // The API reference: Swagger UI (npm: swagger-ui-dist) over the contract.
    staticFile('/openapi.yaml', repo, 'openapi.yaml'),
    staticRoot('/api-reference/swagger-ui/', openapi, 'node_modules', 'swagger-ui-dist'),
    staticRoot('/api-reference/', openapi, 'reference'),
    staticRoot('/', demo, 'public'),
  ],
  demoConfig: {
    apiBase: origin,
    nangoHost: env.DEMO_NANGO_HOST ?? env.NANGO_HOST ?? 'https://api.nango.dev',
    emulator: env.DEMO_EMULATOR === '1',
    connectUiUrl: env.DEMO_EMULATOR === '1' ? `${env.DEMO_NANGO_HOST}/connect-ui/` : null,
    integrations: (env.DEMO_INTEGRATIONS ?? '').split(',').map((i) => i.trim()).filter(Boolean),
  },
});
gateway.listen(port, host, () => {
  console.log(`local gateway listening on ${origin}`);
  console.log(`tokens checked against ${authorizer.issuer} (audience ${authorizer.audiences.join(', ')})`);
  console.log(`up to ${maxSandboxes} sandbox(es) per function (SANDBOXES_PER_FUNCTION)`);
});

// Start one sandbox of each function now, so the first click does not pay cold starts.
for (const fn of Object.values(functions)) fn.start();

// The table's stream → publish-events, when the stack has an event bus (scripts/dev sets one).
let poller = null;
if (env.EVENT_BUS_NAME && env.AWS_ENDPOINT_URL_DYNAMODB) {
  poller = new StreamPoller({ endpoint: env.AWS_ENDPOINT_URL_DYNAMODB, table: env.CONNECTIONS_TABLE, fn: functions['publish-events'] });
  await poller.start();
}

const stop = () => {
  poller?.stop();
  for (const fn of Object.values(functions)) fn.stop();
  gateway.close();
  process.exit(0);
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
