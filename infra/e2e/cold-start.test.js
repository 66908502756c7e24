// A function that cannot configure itself fails its cold start with one log line naming the
// variable at fault, and never the value of a secret. Runs the built binaries (FUNCTIONS_DIR).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const dir = process.env.FUNCTIONS_DIR ?? join(import.meta.dirname, '..', '..', 'target', 'debug');
const lambdaEnv = {
  AWS_LAMBDA_FUNCTION_NAME: 'cold-start-test',
  AWS_LAMBDA_RUNTIME_API: '127.0.0.1:9',
  AWS_REGION: 'us-east-1',
  AWS_ACCESS_KEY_ID: 'local',
  AWS_SECRET_ACCESS_KEY: 'local',
};
const SECRET = 'do-not-print-this-secret';

function coldStart(fn, env) {
  const run = spawnSync(join(dir, fn), [], { env: { ...lambdaEnv, ...env }, encoding: 'utf8', timeout: 10_000 });
  const lines = `${run.stdout}${run.stderr}`.split('\n').filter((line) => line.trim());
  return { status: run.status, lines };
}

const cases = [
  ['create-session', {}, 'NANGO_SECRET_KEY'],
  ['create-session', { NANGO_SECRET_KEY: SECRET, NANGO_HOST: 'http://nango.example.com' }, 'NANGO_HOST'],
  ['reconnect-session', { NANGO_SECRET_KEY: SECRET }, 'CONNECTIONS_TABLE'],
  ['list-connections', {}, 'CONNECTIONS_TABLE'],
  ['list-connections', { CONNECTIONS_TABLE: 't', ORGANIZATION_ACCESS: 'public' }, 'ORGANIZATION_ACCESS'],
  ['delete-connection', { NANGO_SECRET_KEY: SECRET }, 'CONNECTIONS_TABLE'],
  ['delete-connection', { NANGO_SECRET_KEY: SECRET, CONNECTIONS_TABLE: 't', ORGANIZATION_ACCESS: 'everyone' }, 'ORGANIZATION_ACCESS'],
  ['webhook-receiver', { CONNECTIONS_TABLE: 't' }, 'NANGO_WEBHOOK_SIGNING_KEY'],
  ['webhook-receiver', { CONNECTIONS_TABLE: 't', NANGO_WEBHOOK_SIGNING_KEY: ' , ' }, 'NANGO_WEBHOOK_SIGNING_KEY'],
  ['webhook-receiver', { CONNECTIONS_TABLE: 't', NANGO_WEBHOOK_SIGNING_KEY: SECRET }, 'NANGO_SECRET_KEY'],
  ['webhook-receiver', { CONNECTIONS_TABLE: 't', NANGO_WEBHOOK_SIGNING_KEY: SECRET, NANGO_SECRET_KEY: SECRET, NANGO_HOST: 'http://nango.example.com' }, 'NANGO_HOST'],
  ['webhook-receiver', { CONNECTIONS_TABLE: 't', NANGO_WEBHOOK_SIGNING_KEY: SECRET, NANGO_SECRET_KEY: SECRET }, 'EVENT_BUS_NAME'],
  ['publish-events', {}, 'EVENT_BUS_NAME'],
  ['reconcile-connections', { CONNECTIONS_TABLE: 't' }, 'NANGO_SECRET_KEY'],
  ['reconcile-connections', { CONNECTIONS_TABLE: 't', NANGO_SECRET_KEY: SECRET, RECONCILE_PAGE_SIZE: '5000' }, 'RECONCILE_PAGE_SIZE'],
];

for (const [fn, env, variable] of cases) {
  test(`${fn} without a valid ${variable} fails its cold start with one line naming it`, () => {
    const { status, lines } = coldStart(fn, env);
    assert.notEqual(status, 0);
    assert.equal(lines.length, 1, lines.join('\n'));
    assert.match(lines[0], new RegExp(variable));
    assert.ok(!lines[0].includes(SECRET), lines[0]);
  });
}
