// The routes are the same everywhere: the HttpApi events of template.yaml, the paths of
// openapi.yaml, and the routes of the local gateway.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { API_ROUTES } from '../../local-gateway/src/gateway.js';
import { Contract, documentedRoutes } from '../contract.js';

// Documented in openapi.yaml but not built yet (issue 8). The one list to edit: when a route lands
// in template.yaml and the local gateway, the tests below fail until its line is removed.
export const NOT_YET_BUILT = [];

const repo = join(import.meta.dirname, '..', '..', '..');
const documented = documentedRoutes(new Contract().document).sort();

/** "METHOD /path" of every HttpApi event. CloudFormation's short tags (!Ref, !If, ...) do not
 * matter here: yaml keeps their values as they are written, which is all the events use. */
export function templateRoutes(text) {
  const template = parse(text, { logLevel: 'error' });
  return Object.values(template.Resources ?? {})
    .flatMap((resource) => Object.values(resource.Properties?.Events ?? {}))
    .filter((event) => event.Type === 'HttpApi')
    .map((event) => `${event.Properties.Method.toUpperCase()} ${event.Properties.Path}`)
    .sort();
}

/** What the document describes must be built, and what is built must be described. */
export function compareRoutes(what, built, documented, notYetBuilt = NOT_YET_BUILT) {
  const landed = notYetBuilt.filter((route) => built.includes(route));
  assert.deepEqual(landed, [], `${what} has ${landed.join(', ')} now: remove it from NOT_YET_BUILT in ${import.meta.filename}`);
  const expected = documented.filter((route) => !notYetBuilt.includes(route));
  assert.deepEqual([...built].sort(), expected, `${what} and openapi.yaml disagree on the routes`);
}

test('template.yaml routes exactly the paths openapi.yaml documents', () => {
  const built = templateRoutes(readFileSync(join(repo, 'template.yaml'), 'utf8'));
  assert.ok(built.length >= 3, `found ${built.length} HttpApi events`);
  compareRoutes('template.yaml', built, documented);
});

test('the local gateway routes exactly the paths openapi.yaml documents', () => {
  compareRoutes('the local gateway', API_ROUTES.map((r) => `${r.method} ${r.path}`), documented);
});

test('a route missing from either side, or built but still listed as not built, fails the comparison', () => {
  const routes = ['GET /connections', 'POST /sessions'];
  assert.throws(() => compareRoutes('t', routes, [...routes, 'PUT /x'], []), /disagree/);
  assert.throws(() => compareRoutes('t', [...routes, 'PUT /x'], routes, []), /disagree/);
  assert.throws(() => compareRoutes('t', [...routes, 'PUT /x'], [...routes, 'PUT /x'], ['PUT /x']), /remove it from NOT_YET_BUILT/);
  const template = 'Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      Events:\n        E:\n          Type: HttpApi\n          Properties:\n            ApiId: !Ref Api\n            Method: post\n            Path: /x\n';
  assert.deepEqual(templateRoutes(template), ['POST /x']);
});
