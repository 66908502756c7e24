// Starts the local gateway and the function binaries behind it.
// Configuration comes from the environment (scripts/dev sets it); see README.md.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createGateway, staticRoot } from './gateway.js';
import { LambdaFunction } from './runtime-api.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const env = process.env;
const port = Number(env.GATEWAY_PORT ?? 3000);
const host = '127.0.0.1';
const origin = `http://${host}:${port}`;
const binaries = env.FUNCTIONS_DIR ?? join(repo, 'target', 'debug');
if (!env.DEV_JWT_SECRET) {
  console.error('DEV_JWT_SECRET is required (scripts/dev sets it)');
  process.exit(1);
}

// What each function reads, as the SAM template gives it; the plain variables stand in for
// Secrets Manager locally.
const passed = [
  'NANGO_HOST', 'NANGO_SECRET_KEY', 'NANGO_WEBHOOK_SIGNING_KEY', 'NANGO_ALLOWED_INTEGRATIONS',
  'CONNECTIONS_TABLE', 'END_USER_ID_CLAIM', 'END_USER_EMAIL_CLAIM', 'END_USER_NAME_CLAIM',
  'ORGANIZATION_ID_CLAIM', 'AWS_ENDPOINT_URL_DYNAMODB', 'AWS_REGION', 'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY', 'RUST_LOG', 'RECONCILE_PAGE_SIZE', 'RECONCILE_MAX_PAGES',
  'RECONCILE_MAX_CONFIRMATIONS', 'RECONCILE_GRACE_SECONDS',
];
const functionEnv = Object.fromEntries(passed.filter((name) => env[name]).map((name) => [name, env[name]]));
// As in template.yaml.
const timeouts = {
  'create-session': 20_000, 'reconnect-session': 20_000, 'list-connections': 15_000, 'webhook-receiver': 10_000,
  'reconcile-connections': 300_000,
};

const functions = {};
for (const [name, timeoutMs] of Object.entries(timeouts)) {
  functions[name] = new LambdaFunction({ name, binary: join(binaries, name), env: functionEnv, timeoutMs });
  await functions[name].listen();
}

const demo = join(repo, 'infra', 'demo');
const gateway = createGateway({
  functions,
  jwt: { secret: env.DEV_JWT_SECRET, issuer: `${origin}/dev`, audience: 'nango-connect-local' },
  allowedOrigins: (env.ALLOWED_ORIGINS ?? `${origin},http://localhost:${port}`).split(',').map((o) => o.trim()),
  staticRoots: [
    staticRoot('/vendor/nango/', demo, 'node_modules', '@nangohq', 'frontend', 'dist'),
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
gateway.listen(port, host, () => console.log(`local gateway listening on ${origin}`));

// Start every sandbox now, so the first click does not pay the cold starts.
for (const fn of Object.values(functions)) fn.start();

const stop = () => {
  for (const fn of Object.values(functions)) fn.stop();
  gateway.close();
  process.exit(0);
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
