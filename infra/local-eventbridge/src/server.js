// A local stand-in for Amazon EventBridge's PutEvents, for the dev stack and the tests: the AWS SDK
// reaches it through AWS_ENDPOINT_URL_EVENTBRIDGE and speaks JSON 1.1 to it
// (`X-Amz-Target: AWSEvents.PutEvents`). It checks what EventBridge checks of an entry (source,
// detail-type, a JSON object as detail, 256 KiB, at most 10 entries), keeps every event it took, and
// prints one line per event so `scripts/dev` shows them as they happen.
//
//   GET    /events                    every event taken, oldest first: {"events": [...]}
//                                     (?detailType=connection.failed filters)
//   DELETE /events                    forget them
//   POST   /_control/fail             {"mode": "request" | "entries", "count": N}: the next N
//                                     PutEvents calls fail (a 500, or every entry refused)
//   GET    /health
//
// No dependencies; no authentication (the SDK's signature is not checked).
import { createServer } from 'node:http';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';

const MAX_ENTRY_BYTES = 256 * 1024;
const MAX_ENTRIES = 10;
const JSON_11 = 'application/x-amz-json-1.1';

export function createEventBridge({ log = console.log } = {}) {
  const events = [];
  let failures = { mode: null, count: 0 };

  const reply = (res, status, body, type = 'application/json') => {
    res.writeHead(status, { 'content-type': type });
    res.end(JSON.stringify(body));
  };
  const awsError = (res, status, type, message) => reply(res, status, { __type: type, message }, JSON_11);

  function putEvents(res, request) {
    const entries = request?.Entries;
    if (!Array.isArray(entries) || entries.length < 1 || entries.length > MAX_ENTRIES) {
      return awsError(res, 400, 'ValidationException', `Entries must hold 1 to ${MAX_ENTRIES} entries`);
    }
    if (failures.count > 0 && failures.mode === 'request') {
      failures.count -= 1;
      return awsError(res, 500, 'InternalException', 'injected failure (local stand-in)');
    }
    const refuseAll = failures.count > 0 && failures.mode === 'entries';
    if (refuseAll) failures.count -= 1;
    const results = entries.map((entry) => {
      if (refuseAll) return { ErrorCode: 'InternalFailure', ErrorMessage: 'injected failure (local stand-in)' };
      const problem = invalid(entry);
      if (problem) return { ErrorCode: 'MalformedDetail', ErrorMessage: problem };
      const event = {
        id: randomUUID(),
        bus: entry.EventBusName ?? 'default',
        source: entry.Source,
        detailType: entry.DetailType,
        // The SDK sends Time as epoch seconds.
        time: new Date(typeof entry.Time === 'number' ? entry.Time * 1000 : Date.now()).toISOString(),
        detail: JSON.parse(entry.Detail),
      };
      events.push(event);
      log(`[eventbridge] ${event.detailType} ${entry.Detail.length > 400 ? `${entry.Detail.slice(0, 400)}…` : entry.Detail}`);
      return { EventId: event.id };
    });
    reply(res, 200, { FailedEntryCount: results.filter((r) => r.ErrorCode).length, Entries: results }, JSON_11);
  }

  function invalid(entry) {
    for (const field of ['Source', 'DetailType', 'Detail']) {
      if (typeof entry[field] !== 'string' || !entry[field]) return `${field} is required`;
    }
    let detail;
    try {
      detail = JSON.parse(entry.Detail);
    } catch {
      return 'Detail is not valid JSON';
    }
    if (detail === null || typeof detail !== 'object' || Array.isArray(detail)) return 'Detail is not a JSON object';
    const size = Buffer.byteLength(entry.Source) + Buffer.byteLength(entry.DetailType) + Buffer.byteLength(entry.Detail) + 14;
    if (size > MAX_ENTRY_BYTES) return `the entry is ${size} bytes, over ${MAX_ENTRY_BYTES}`;
    return null;
  }

  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => {
      const url = new URL(req.url, 'http://localhost');
      let body = null;
      try {
        body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString()) : null;
      } catch {
        return awsError(res, 400, 'SerializationException', 'the body is not JSON');
      }
      const target = req.headers['x-amz-target'];
      if (req.method === 'POST' && target) {
        if (target === 'AWSEvents.PutEvents') return putEvents(res, body);
        return awsError(res, 400, 'UnknownOperationException', `${target} is not emulated`);
      }
      if (url.pathname === '/events' && req.method === 'GET') {
        const type = url.searchParams.get('detailType');
        return reply(res, 200, { events: type ? events.filter((e) => e.detailType === type) : events });
      }
      if (url.pathname === '/events' && req.method === 'DELETE') {
        events.length = 0;
        return reply(res, 200, { events: [] });
      }
      if (url.pathname === '/_control/fail' && req.method === 'POST') {
        const mode = body?.mode;
        if (!['request', 'entries'].includes(mode)) return reply(res, 400, { error: 'mode is request or entries' });
        failures = { mode, count: Number(body.count ?? 1) };
        return reply(res, 200, failures);
      }
      if (url.pathname === '/health') return reply(res, 200, { ok: true });
      reply(res, 404, { error: 'not found' });
    });
  });
  return { server, events };
}

export async function startEventBridge({ port = 0, log } = {}) {
  const bridge = createEventBridge({ log });
  await new Promise((resolve) => bridge.server.listen(port, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${bridge.server.address().port}`;
  return { ...bridge, url, close: () => new Promise((resolve) => bridge.server.close(resolve)) };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const index = process.argv.indexOf('--port');
  const port = index > 0 ? Number(process.argv[index + 1]) : Number(process.env.EVENTBRIDGE_PORT ?? 0);
  const { url } = await startEventBridge({ port });
  console.log(`local EventBridge listening on ${url}`);
}
