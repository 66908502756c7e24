// openapi.yaml is a valid OpenAPI 3.1 document (redocly lint, its recommended rules with warnings
// as errors), and a typed client can be generated from it as the README shows.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DOCUMENT_PATH } from '../contract.js';

const here = join(import.meta.dirname, '..');
const bin = (name) => join(here, 'node_modules', '.bin', name);
// Nothing leaves the machine: no telemetry, no update check.
const offline = { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true', NO_COLOR: '1' };

test('redocly lint finds nothing', () => {
  const run = spawnSync(bin('redocly'), ['lint', '--config', join(here, 'redocly.yaml'), DOCUMENT_PATH], {
    env: offline,
    encoding: 'utf8',
    timeout: 60_000,
  });
  const output = `${run.stdout}${run.stderr}`;
  assert.equal(run.status, 0, output);
  assert.match(output, /Your API description is valid/, output);
  assert.doesNotMatch(output, /You have \d+ warning/, output);
});

test('redocly lint fails a broken document', () => {
  const dir = mkdtempSync(join(tmpdir(), 'openapi-'));
  try {
    const broken = join(dir, 'openapi.yaml');
    const text = readFileSync(DOCUMENT_PATH, 'utf8').replace("$ref: '#/components/schemas/Session'", "$ref: '#/components/schemas/Sesion'");
    writeFileSync(broken, text);
    const run = spawnSync(bin('redocly'), ['lint', '--config', join(here, 'redocly.yaml'), broken], { env: offline, encoding: 'utf8', timeout: 60_000 });
    assert.notEqual(run.status, 0, `${run.stdout}${run.stderr}`);
    assert.match(`${run.stdout}${run.stderr}`, /Sesion/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('openapi-typescript generates the client types the README describes', () => {
  const run = spawnSync(bin('openapi-typescript'), [DOCUMENT_PATH], { env: offline, encoding: 'utf8', timeout: 60_000 });
  assert.equal(run.status, 0, run.stderr);
  for (const name of ['createSession', 'createReconnectSession', 'listConnections', 'deleteConnection']) {
    assert.match(run.stdout, new RegExp(`${name}: \\{`), name);
  }
  assert.match(run.stdout, /code: "invalid_body" \| "integration_not_allowed";/);
  assert.match(run.stdout, /nextCursor\?: string \| null/);
});
