// Lambda events in the shapes AWS sends: API Gateway HTTP API payload v2.0 (with the JWT
// authorizer's claims) and Lambda function URL (the same format, without an authorizer).
import { randomUUID } from 'node:crypto';

const TEXT_TYPES = /^(text\/|application\/(json|xml|javascript|x-www-form-urlencoded)|[^;]*\+(json|xml))/i;

function headersOf(request) {
  const headers = {};
  const cookies = [];
  for (const [name, value] of Object.entries(request.headers)) {
    if (name === 'cookie') cookies.push(...String(value).split(/;\s*/));
    else headers[name] = Array.isArray(value) ? value.join(',') : value;
  }
  return { headers, cookies };
}

function timeOf(date) {
  const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const pad = (n) => String(n).padStart(2, '0');
  return `${pad(date.getUTCDate())}/${months[date.getUTCMonth()]}/${date.getUTCFullYear()}:` +
    `${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())} +0000`;
}

export function httpEvent(request, body, { routeKey, claims, domainName, pathParameters }) {
  const url = new URL(request.url, 'http://localhost');
  const { headers, cookies } = headersOf(request);
  const now = new Date();
  const query = url.searchParams;
  const event = {
    version: '2.0',
    routeKey,
    rawPath: url.pathname,
    rawQueryString: url.search.slice(1),
    headers,
    requestContext: {
      accountId: claims ? '000000000000' : 'anonymous',
      apiId: 'local',
      domainName,
      domainPrefix: domainName.split('.')[0],
      http: {
        method: request.method,
        path: url.pathname,
        protocol: `HTTP/${request.httpVersion}`,
        sourceIp: request.socket.remoteAddress ?? '127.0.0.1',
        userAgent: headers['user-agent'] ?? '',
      },
      requestId: randomUUID(),
      routeKey,
      stage: '$default',
      time: timeOf(now),
      timeEpoch: now.getTime(),
    },
    isBase64Encoded: false,
  };
  if (cookies.length) event.cookies = cookies;
  if (pathParameters && Object.keys(pathParameters).length) event.pathParameters = pathParameters;
  if ([...query.keys()].length) {
    event.queryStringParameters = Object.fromEntries(
      [...new Set(query.keys())].map((key) => [key, query.getAll(key).join(',')]),
    );
  }
  if (claims) event.requestContext.authorizer = { jwt: { claims, scopes: null } };
  if (body.length) {
    const text = TEXT_TYPES.test(headers['content-type'] ?? '');
    event.body = body.toString(text ? 'utf8' : 'base64');
    event.isBase64Encoded = !text;
  }
  return event;
}

// API Gateway hands claims to the function as strings: arrays as "[a b]", other values as text.
export function stringifyClaims(claims) {
  return Object.fromEntries(
    Object.entries(claims).map(([name, value]) => {
      if (typeof value === 'string') return [name, value];
      if (Array.isArray(value)) return [name, `[${value.join(' ')}]`];
      if (value !== null && typeof value === 'object') return [name, JSON.stringify(value)];
      return [name, String(value)];
    }),
  );
}
