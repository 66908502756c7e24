// The local stack's own OpenID Connect issuer: a discovery document, a JWKS with one RSA public
// key, and dev tokens signed with its private key. The gateway's authorizer finds this issuer the
// way it finds Cognito or Auth0 (discovery, then jwks_uri, then the key by kid), so a dev token is
// checked by the same code as a real one. Only local tooling signs with this key.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { SignJWT, calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK } from 'jose';

export const ALGORITHM = 'RS256';
export const DISCOVERY_PATH = '/.well-known/openid-configuration';
export const JWKS_PATH = '/jwks.json';
const PUBLIC_MEMBERS = ['kty', 'n', 'e'];

// A fresh RSA key pair, in memory only (`scripts/dev --in-memory`, the tests).
export async function generateSigningKey() {
  const { privateKey } = await generateKeyPair(ALGORITHM, { modulusLength: 2048, extractable: true });
  return signingKeyFrom(await exportJWK(privateKey));
}

// The key pair kept in FILE (a private JWK, readable by its owner only), made on first use, so
// that dev tokens outlive a restart of the stack.
export async function loadOrCreateSigningKey(file) {
  let text;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if (error.code !== 'ENOENT') throw error;
    const key = await generateSigningKey();
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, `${JSON.stringify(key.privateJwk, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
    return key;
  }
  try {
    return await signingKeyFrom(JSON.parse(text));
  } catch (error) {
    throw new Error(`${file} is not an RSA private JWK (${error.message}); delete it to make a new key`);
  }
}

async function signingKeyFrom(privateJwk) {
  if (privateJwk.kty !== 'RSA' || !privateJwk.d) throw new Error('not an RSA private key');
  const publicMembers = Object.fromEntries(PUBLIC_MEMBERS.map((name) => [name, privateJwk[name]]));
  // The RFC 7638 thumbprint names the key: a new key pair gets a new kid by construction.
  const kid = await calculateJwkThumbprint(publicMembers);
  return {
    kid,
    privateJwk: { ...privateJwk, kid, alg: ALGORITHM },
    publicJwk: { ...publicMembers, kid, alg: ALGORITHM, use: 'sig' },
    privateKey: await importJWK(privateJwk, ALGORITHM),
  };
}

// url: the issuer, exactly as tokens carry it in `iss`; its discovery document is served at
// url + DISCOVERY_PATH and its keys at url + JWKS_PATH (by the gateway, see gateway.js).
export function createLocalIssuer({ url, audience, signingKey, lifetimeSeconds = 12 * 3600 }) {
  return {
    url,
    audience,
    discovery: () => ({
      issuer: url,
      jwks_uri: `${url}${JWKS_PATH}`,
      response_types_supported: ['id_token'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: [ALGORITHM],
    }),
    jwks: () => ({ keys: [signingKey.publicJwk] }),
    mint(claims) {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT(claims)
        .setProtectedHeader({ alg: ALGORITHM, kid: signingKey.kid, typ: 'JWT' })
        .setIssuer(url)
        .setAudience(audience)
        .setIssuedAt(now)
        .setExpirationTime(now + lifetimeSeconds)
        .sign(signingKey.privateKey);
    },
  };
}
