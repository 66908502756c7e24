// The checks API Gateway's HTTP API JWT authorizer makes before a route's function runs, as AWS
// documents them (developerguide/http-api-jwt-authorizer.html, "Authorizing API requests with a
// JWT authorizer"; troubleshooting: http-api-troubleshooting-jwt.html):
// - the signature, with the issuer's public key found by the token's `kid` in the JWKS named by
//   `jwks_uri` in <issuer>/.well-known/openid-configuration; only RSA-based algorithms;
// - iss equal to the configured issuer; aud matching one configured audience, or client_id when
//   there is no aud (when both are present only aud counts); exp after now; nbf and iat before now.
// Every refusal is the same 401 for the caller; the reason goes in `www-authenticate`, as AWS puts
// it there, and in the gateway's log.
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';

// "Currently, only RSA-based algorithms are supported" (AWS). RS256/384/512 are the RSA signatures
// every OIDC provider that API Gateway is used with can issue. RSASSA-PSS (PS*) is RSA too, but
// AWS names no algorithm: refusing it here is loud, accepting what AWS might refuse would not be.
export const ALGORITHMS = ['RS256', 'RS384', 'RS512'];
const DISCOVERY = '/.well-known/openid-configuration';

class KeysUnavailable extends Error {}

// issuer: the exact `iss` tokens must carry; audiences: the accepted `aud` / `client_id` values.
// JWKS caching: keys are reused for cacheMaxAgeMs; a token whose kid is not among them makes one
// refetch, at most once per cooldownMs (so forged kids cannot make the gateway hammer the issuer);
// a failed discovery is retried at most once per cooldownMs too.
export function createAuthorizer({
  issuer,
  audiences,
  cacheMaxAgeMs = 10 * 60_000,
  cooldownMs = 30_000,
  timeoutMs = 5_000,
  log = console.log,
}) {
  if (!issuer) throw new Error('an issuer is required');
  if (!audiences?.length) throw new Error('at least one audience is required');
  let keySet = null;
  let lastFailure = null;

  async function discover() {
    const url = `${issuer.replace(/\/+$/, '')}${DISCOVERY}`;
    let document;
    try {
      const response = await fetch(url, { headers: { accept: 'application/json' }, signal: AbortSignal.timeout(timeoutMs) });
      if (response.status !== 200) throw new Error(`answered ${response.status}`);
      document = await response.json();
    } catch (error) {
      throw new KeysUnavailable(`discovery document ${url}: ${error.message}`);
    }
    if (typeof document?.jwks_uri !== 'string') throw new KeysUnavailable(`${url} names no jwks_uri`);
    if (document.issuer !== issuer) {
      log(`[authorizer] warning: ${url} names the issuer ${JSON.stringify(document.issuer)}; tokens must carry iss ${JSON.stringify(issuer)} exactly`);
    }
    let jwksUri;
    try {
      jwksUri = new URL(document.jwks_uri);
    } catch {
      throw new KeysUnavailable(`${url} names an invalid jwks_uri`);
    }
    return createRemoteJWKSet(jwksUri, { cacheMaxAge: cacheMaxAgeMs, cooldownDuration: cooldownMs, timeoutDuration: timeoutMs });
  }

  async function keys() {
    if (keySet) return keySet;
    if (lastFailure && Date.now() - lastFailure.at < cooldownMs) throw lastFailure.error;
    try {
      keySet = await discover();
      lastFailure = null;
      return keySet;
    } catch (error) {
      lastFailure = { at: Date.now(), error };
      throw error;
    }
  }

  // Resolves to { claims } or { refusal: why, in words fit for a www-authenticate header }.
  async function verify(token) {
    let header;
    try {
      header = decodeProtectedHeader(token);
    } catch {
      return { refusal: 'the token is not a JWT' };
    }
    // Refused before any key is fetched: `none`, HMAC (HS256, whose "key" would be public),
    // elliptic curves, anything not RSA.
    if (!ALGORITHMS.includes(header.alg)) {
      // The alg is the caller's text: named in the answer and the log only when it looks like one.
      const named = typeof header.alg === 'string' && /^[A-Za-z0-9+._-]{1,32}$/.test(header.alg);
      return { refusal: named ? `signing method ${header.alg} is invalid` : 'the signing method is invalid' };
    }
    if (typeof header.kid !== 'string' || !header.kid) return { refusal: 'the token has no kid' };

    let claims;
    try {
      ({ payload: claims } = await jwtVerify(token, await keys(), {
        algorithms: ALGORITHMS,
        issuer,
        requiredClaims: ['exp'],
      }));
    } catch (error) {
      const refusal = refusalFor(error);
      if (!refusal) {
        log(`[authorizer] the issuer's keys could not be fetched: ${error.message}`);
        return { refusal: "the issuer's signing keys could not be fetched" };
      }
      return { refusal };
    }

    const now = Math.floor(Date.now() / 1000);
    if (claims.iat !== undefined && !(typeof claims.iat === 'number' && claims.iat <= now)) {
      return { refusal: 'the token was issued in the future' };
    }
    const audienceOk = claims.aud !== undefined
      ? [claims.aud].flat().some((aud) => audiences.includes(aud))
      : audiences.includes(claims.client_id);
    if (!audienceOk) return { refusal: 'the token does not have a valid audience' };
    return { claims };
  }

  return { issuer, audiences, verify };
}

// What a jose error says about the token, or null when the keys could not be had at all.
function refusalFor(error) {
  if (error instanceof KeysUnavailable) return null;
  switch (error.code) {
    case 'ERR_JWT_EXPIRED':
      return 'the token has expired';
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      if (error.claim === 'iss') return 'the token does not have a valid issuer';
      if (error.claim === 'nbf') return 'the token is not valid yet';
      return `the token's ${error.claim} claim is ${error.reason === 'missing' ? 'missing' : 'invalid'}`;
    case 'ERR_JWKS_NO_MATCHING_KEY':
      return "no key in the issuer's JWKS matches the token's kid";
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return 'the signature is invalid';
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return 'the signing method is invalid';
    case 'ERR_JWT_INVALID':
    case 'ERR_JWS_INVALID':
    case 'ERR_JOSE_NOT_SUPPORTED':
      return 'the token is not a valid JWT';
    case 'ERR_JWKS_MULTIPLE_MATCHING_KEYS':
      return "several keys in the issuer's JWKS match the token's kid";
    default:
      // Timeouts, connection errors, a JWKS answer that is not 200 or not a key set.
      return null;
  }
}
