// The response checker: does openapi.yaml describe this answer? The end-to-end tests pass every
// answer of the stack's API and webhook receiver through it; shared/tests/it/contract.rs applies
// the same rules to the Rust integration tests.
//
// An answer is described when the document has its path (or webhook) and method, a response for
// its exact status (there is no `default` to fall back on), the headers that response requires,
// a Content-Type it names, and a body its schema accepts. A method the path does not have must get
// components/responses/MethodNotAllowed with `Allow` listing exactly the methods it does have.
// Retry-After, Allow and WWW-Authenticate matter to clients: each must be described where it appears.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { parse } from 'yaml';

export const DOCUMENT_PATH = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'openapi.yaml');
const DOCUMENT_ID = 'openapi.yaml';
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];
export const HEADERS_THAT_MATTER = ['retry-after', 'allow', 'www-authenticate'];
const METHOD_NOT_ALLOWED = '/components/responses/MethodNotAllowed';

export class ContractError extends Error {
  name = 'ContractError';
}

const escape = (segment) => segment.replaceAll('~', '~0').replaceAll('/', '~1');

/** The document's operations, as "METHOD /path" (paths only; webhooks are not routes). */
export function documentedRoutes(document) {
  return Object.entries(document.paths ?? {}).flatMap(([path, item]) =>
    METHODS.filter((method) => item[method]).map((method) => `${method.toUpperCase()} ${path}`),
  );
}

export class Contract {
  constructor(text = readFileSync(DOCUMENT_PATH, 'utf8')) {
    this.document = parse(text);
    this.ajv = new Ajv2020({ allErrors: true, strict: false, validateSchema: false });
    addFormats(this.ajv);
    this.ajv.addSchema(this.document, DOCUMENT_ID);
    this.validators = new Map();
  }

  /**
   * Throws a ContractError unless the document describes this answer.
   * `to` is an API path (its query is ignored) or `{ webhook: name }`.
   */
  check({ method, to, status, headers = {}, body }) {
    const where = typeof to === 'string' ? this.#path(to) : this.#webhook(to.webhook);
    const asked = `${method.toUpperCase()} ${where.name}`;
    const allowed = METHODS.filter((m) => where.item[m]).map((m) => m.toUpperCase());
    const operation = where.item[method.toLowerCase()];
    let pointer;
    if (operation) {
      pointer = `${where.pointer}/${method.toLowerCase()}/responses/${status}`;
      if (!operation.responses?.[String(status)]) {
        throw new ContractError(`${asked}: the document describes no ${status} answer (it has ${Object.keys(operation.responses ?? {}).join(', ')})`);
      }
    } else {
      pointer = METHOD_NOT_ALLOWED;
      if (status !== 405) throw new ContractError(`${asked}: a method the document does not give this path must be answered 405, not ${status}`);
    }
    const [response, at] = this.#resolve(pointer);
    const lower = Object.fromEntries(Object.entries(headers).map(([name, value]) => [name.toLowerCase(), value]));
    this.#checkHeaders(asked, status, response, at, lower);
    if (!operation) {
      const listed = String(lower.allow ?? '').split(',').map((m) => m.trim()).filter(Boolean).sort();
      if (listed.join() !== [...allowed].sort().join()) {
        throw new ContractError(`${asked}: Allow is "${lower.allow}", the document gives ${allowed.join(', ')}`);
      }
    }
    this.#checkBody(asked, status, response, at, lower['content-type'], body);
  }

  #path(url) {
    const path = new URL(url, 'http://contract.invalid').pathname;
    for (const [template, item] of Object.entries(this.document.paths ?? {})) {
      const pattern = new RegExp(`^${template.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{[^}/]+\}/g, '[^/]+')}$`);
      if (pattern.test(path)) return { name: template, item, pointer: `/paths/${escape(template)}` };
    }
    throw new ContractError(`${path}: the document has no such path`);
  }

  #webhook(name) {
    const item = this.document.webhooks?.[name];
    if (!item) throw new ContractError(`webhook ${name}: the document has no such webhook`);
    return { name: `webhook ${name}`, item, pointer: `/webhooks/${escape(name)}` };
  }

  /** The node at a JSON pointer, following `$ref`s; and the pointer it was found at. */
  #resolve(pointer) {
    let node = this.document;
    let at = '';
    for (const segment of pointer.split('/').slice(1)) {
      node = node?.[segment.replaceAll('~1', '/').replaceAll('~0', '~')];
      at += `/${segment}`;
      while (node && typeof node.$ref === 'string') {
        [node, at] = this.#resolve(node.$ref.replace(/^#/, ''));
      }
    }
    if (node === undefined) throw new ContractError(`the document has nothing at ${pointer}`);
    return [node, at];
  }

  #validate(at, value, what = 'body') {
    let validate = this.validators.get(at);
    if (!validate) {
      validate = this.ajv.compile({ $ref: `${DOCUMENT_ID}#${encodeURI(at)}` });
      this.validators.set(at, validate);
    }
    if (validate(value)) return null;
    return this.ajv.errorsText(validate.errors, { dataVar: what });
  }

  #checkHeaders(asked, status, response, at, headers) {
    const described = Object.fromEntries(Object.keys(response.headers ?? {}).map((name) => [name.toLowerCase(), name]));
    for (const name of HEADERS_THAT_MATTER) {
      if (headers[name] !== undefined && !described[name]) {
        throw new ContractError(`${asked} ${status}: the answer has ${name}, which the document does not describe`);
      }
    }
    for (const [lower, name] of Object.entries(described)) {
      const [header, headerAt] = this.#resolve(`${at}/headers/${escape(name)}`);
      const value = headers[lower];
      if (value === undefined) {
        if (header.required) throw new ContractError(`${asked} ${status}: the required header ${name} is missing`);
        continue;
      }
      const error = this.#validate(`${headerAt}/schema`, String(value), name);
      if (error) throw new ContractError(`${asked} ${status}: header ${name}: "${value}": ${error}`);
    }
  }

  #checkBody(asked, status, response, at, contentType, body) {
    const empty = body === undefined || body === null || body === '';
    if (!response.content) {
      if (!empty) throw new ContractError(`${asked} ${status}: the document describes no body, the answer has one`);
      return;
    }
    const mediaType = String(contentType ?? '').split(';')[0].trim().toLowerCase();
    if (!response.content[mediaType]) {
      throw new ContractError(`${asked} ${status}: Content-Type "${contentType}" is not one the document gives (${Object.keys(response.content).join(', ')})`);
    }
    const error = this.#validate(`${at}/content/${escape(mediaType)}/schema`, body);
    if (error) throw new ContractError(`${asked} ${status}: ${error}; the body: ${JSON.stringify(body)}`);
  }
}
