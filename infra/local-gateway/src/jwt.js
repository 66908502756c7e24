// Dev tokens: HS256 JWTs minted and checked only here, in local tooling. The deployed functions
// never see a token; they trust the claims API Gateway's authorizer put in the event, as they do
// here.
import { createHmac, timingSafeEqual } from 'node:crypto';

const HEADER = base64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));

function base64url(text) {
  return Buffer.from(text).toString('base64url');
}

function signature(secret, signingInput) {
  return createHmac('sha256', secret).update(signingInput).digest('base64url');
}

export function mint(secret, claims, { issuer, audience, lifetimeSeconds = 12 * 3600 }) {
  const now = Math.floor(Date.now() / 1000);
  const payload = base64url(
    JSON.stringify({ ...claims, iss: issuer, aud: audience, iat: now, exp: now + lifetimeSeconds }),
  );
  const signingInput = `${HEADER}.${payload}`;
  return `${signingInput}.${signature(secret, signingInput)}`;
}

// The checks API Gateway's JWT authorizer makes: signature, algorithm, exp, nbf, iss, aud.
// Returns the claims, or null.
export function verify(secret, token, { issuer, audience }) {
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  const [header, payload, sig] = parts;
  const expected = Buffer.from(signature(secret, `${header}.${payload}`));
  const given = Buffer.from(sig);
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) return null;
  let claims;
  try {
    if (JSON.parse(Buffer.from(header, 'base64url').toString()).alg !== 'HS256') return null;
    claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
  } catch {
    return null;
  }
  const now = Math.floor(Date.now() / 1000);
  if (typeof claims.exp !== 'number' || claims.exp <= now) return null;
  if (typeof claims.nbf === 'number' && claims.nbf > now) return null;
  if (claims.iss !== issuer) return null;
  const audiences = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (!audiences.includes(audience) && claims.client_id !== audience) return null;
  return claims;
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
