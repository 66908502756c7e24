import http from 'node:http';

import { CONNECT_UI_HTML } from './connect-ui.js';
import { controlRoutes } from './control.js';
import { BodyError, answerPreflight, isJsonContentType, parseQuery, readBody, sendError, sendJson, setCorsHeaders } from './http.js';
import { UNMATCHED } from './requests.js';
import { publicRoutes } from './routes.js';

// The request pipeline, in the order Nango's express app applies it to public routes:
// CORS → JSON body parsing (400 invalid_json) → content-type guard (415) → auth (401) →
// rate limit (429) → injected faults (/_emulator/faults) → route handler.

function compile(routes) {
    return routes.map((route) => {
        const names = [];
        const pattern = route.path.replace(/:([A-Za-z]+)/g, (_, name) => {
            names.push(name);
            return '([^/]+)';
        });
        return { ...route, regex: new RegExp(`^${pattern}/?$`), names };
    });
}

function match(routes, method, pathname) {
    let pathMatched = false;
    for (const route of routes) {
        const m = pathname.match(route.regex);
        if (!m) continue;
        pathMatched = true;
        if (route.method !== method) continue;
        const params = {};
        try {
            route.names.forEach((name, i) => {
                params[name] = decodeURIComponent(m[i + 1]);
            });
        } catch {
            return { route, params: null };
        }
        return { route, params };
    }
    return { pathMatched };
}

async function parseBody(req) {
    const raw = await readBody(req);
    if (!isJsonContentType(req) || raw.length === 0) return { body: undefined };
    try {
        return { body: JSON.parse(raw) };
    } catch (err) {
        return { error: err.message };
    }
}

function tooManyRequests(res, method, path, retryAfter) {
    sendError(res, 429, 'too_many_request', {
        extra: { method, path },
        headers: {
            'Retry-After': String(retryAfter),
            'X-RateLimit-Limit': '0',
            'X-RateLimit-Remaining': '0',
            'X-RateLimit-Reset': String(Math.ceil(Date.now() / 1000) + retryAfter)
        }
    });
}

// What a load balancer in front of Nango answers when the servers behind it are down or slow.
function gatewayPage(status) {
    const reason = http.STATUS_CODES[status] || 'Error';
    return `<html>\r\n<head><title>${status} ${reason}</title></head>\r\n<body>\r\n<center><h1>${status} ${reason}</h1></center>\r\n</body>\r\n</html>\r\n`;
}

/**
 * Plays an injected fault. Returns true when the fault answered (or killed) the call, false when
 * the call goes on to its handler (a fault that only delays it).
 */
async function answerFault(fault, { req, res }, ctx) {
    if (fault.hangMs) await ctx.faults.sleep(fault.hangMs);
    if (fault.reset) {
        req.socket.destroy();
        return true;
    }
    if (fault.malformed) {
        // A body cut short, as a proxy that loses the connection half-way would deliver it.
        res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8' });
        res.end('{"connections":[{"id":1,"connection_id":"');
        return true;
    }
    if (fault.status === 429) {
        tooManyRequests(res, req.method, new URL(req.url, 'http://emulator.local').pathname, fault.retryAfter);
        return true;
    }
    if (fault.status === 500) {
        // What Nango's asyncWrapper answers for an exception in a handler.
        sendError(res, 500, 'server_error');
        return true;
    }
    if (fault.status) {
        res.writeHead(fault.status, { 'Content-Type': 'text/html' });
        res.end(gatewayPage(fault.status));
        return true;
    }
    return false;
}

export function createApp(ctx) {
    const publicApi = compile(publicRoutes);
    const control = compile(controlRoutes);

    return async function handle(req, res) {
        const url = new URL(req.url, 'http://emulator.local');
        const { pathname } = url;
        const query = parseQuery(url.search);
        setCorsHeaders(res);

        if (req.method === 'OPTIONS') return answerPreflight(res);

        if (pathname === '/health' && req.method === 'GET') return sendJson(res, 200, { result: 'ok' });
        if (pathname === '/connect-ui' && req.method === 'GET') {
            res.writeHead(301, { Location: `/connect-ui/${url.search}` });
            return res.end();
        }
        if (pathname === '/connect-ui/' && req.method === 'GET') {
            res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
            return res.end(CONNECT_UI_HTML);
        }

        const isControl = pathname.startsWith('/_emulator/');
        const found = match(isControl ? control : publicApi, req.method, pathname);
        if (!isControl) {
            const routeKey = found.route ? `${found.route.method} ${found.route.path}` : UNMATCHED;
            ctx.requests.track(res, routeKey, { lookup: routeKey === 'GET /connections' && query.connectionId !== undefined });
        }

        const parsed = await parseBody(req);
        if (parsed.error) return sendError(res, 400, 'invalid_json', { message: parsed.error });
        const { body } = parsed;

        if (!found.route) {
            return sendError(res, 404, 'not_found', {
                message: found.pathMatched ? `${req.method} is not supported on ${pathname}` : `No route for ${req.method} ${pathname}`
            });
        }
        const { route, params } = found;
        if (!params) return sendError(res, 400, 'invalid_uri_params', { message: 'Malformed percent-encoding in the path' });
        const request = { req, res, query, body, params };

        if (isControl) return route.handler(request, ctx);

        if (route.json && req.headers['content-type'] && !isJsonContentType(req)) {
            return sendError(res, 415, 'invalid_content_type', { message: 'Content-Type header must be application/json' });
        }

        const auth = route.auth(req, res, ctx, query);
        if (!auth) return;

        if (ctx.store.consumeRateLimit()) return tooManyRequests(res, req.method, pathname, ctx.store.rateLimit.retryAfter);

        const fault = ctx.faults.take(`${route.method} ${route.path}`, query);
        if (fault && (await answerFault(fault, request, ctx))) return;

        return route.handler({ ...request, auth }, ctx);
    };
}

/** Wraps the handler so an unexpected exception answers 500 server_error instead of hanging. */
export function withErrors(handle, log = console.error) {
    return async (req, res) => {
        try {
            await handle(req, res);
        } catch (err) {
            if (err instanceof BodyError) {
                if (!res.headersSent) sendError(res, 413, 'payload_too_large', { message: err.message });
                return;
            }
            log(`nango emulator: ${req.method} ${req.url} failed:`, err);
            if (!res.headersSent) sendError(res, 500, 'server_error', { message: err.message });
            else res.end();
        }
    };
}
