// Helpers for the authorizer's and the gateway's tests: an OIDC issuer on loopback whose key set the
// tests change at will and whose fetches they count, and tokens signed any way a caller might sign
// them. Kept outside test/ because `node --test test/` would run every .js file there as a test.
import { createServer } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { SignJWT, base64url, calculateJwkThumbprint, exportJWK, generateKeyPair } from 'jose';

export const now = () => Math.floor(Date.now() / 1000);

// A key pair for ALG (RS256, RS384, PS256, ES256, ...), with its public JWK named by thumbprint.
export async function keyPair(alg = 'RS256', { jwkAlg = alg } = {}) {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(jwk);
  return { alg, kid, privateKey, publicJwk: { ...jwk, kid, use: 'sig', ...(jwkAlg ? { alg: jwkAlg } : {}) } };
}

// A JWT signed with KEY (its own alg and kid unless HEADER says otherwise).
export function sign(key, claims, header = {}) {
  return new SignJWT(claims).setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT', ...header }).sign(key.privateKey);
}

// An unsigned JWT: {"alg":"none"} and an empty signature.
export function unsigned(claims, header = {}) {
  const part = (value) => base64url.encode(JSON.stringify(value));
  return `${part({ alg: 'none', typ: 'JWT', ...header })}.${part(claims)}.`;
}

// An issuer at http://127.0.0.1:PORT<path>: discovery at <issuer>/.well-known/openid-configuration,
// its keys at /keys (outside the issuer's path, as jwks_uri may be). `keys` is the served key set.
export async function startIssuer({ path = '/tenant' } = {}) {
  const issuer = { keys: [], hits: { discovery: 0, jwks: 0 }, down: false };
  const discovery = `${path.replace(/\/+$/, '')}/.well-known/openid-configuration`;
  const server = createServer((req, res) => {
    const send = (status, body) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    const what = req.method !== 'GET' ? null : req.url === discovery ? 'discovery' : req.url === '/keys' ? 'jwks' : null;
    if (!what) return send(404, { message: 'Not Found' });
    issuer.hits[what] += 1;
    if (issuer.down) return send(503, { message: 'unavailable' });
    if (what === 'discovery') {
      return send(200, { issuer: issuer.url, jwks_uri: `${issuer.origin}/keys`, id_token_signing_alg_values_supported: ['RS256'] });
    }
    send(200, { keys: issuer.keys.map((key) => key.publicJwk) });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  issuer.origin = `http://127.0.0.1:${server.address().port}`;
  issuer.url = `${issuer.origin}${path}`;
  issuer.close = () => new Promise((resolve) => server.close(resolve));
  return issuer;
}

// A TCP port nothing listens on right now, for a server that must know its own URL before it
// listens (the gateway's issuer URL names the gateway's port).
export async function freePort() {
  const probe = createNetServer();
  await new Promise((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address();
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
