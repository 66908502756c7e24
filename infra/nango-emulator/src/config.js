import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { DEFAULT_SEED } from './random.js';

export const DEFAULT_PORT = 3003;
export const DEFAULT_CONFIG_PATH = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'emulator.config.json');

// Same check as Nango's access middleware: a secret key must be a UUID v4.
export const UUID_V4 = /^[0-9A-F]{8}-[0-9A-F]{4}-[4][0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}$/i;

const DEFAULTS = {
    environment: 'dev',
    secretKey: 'ad07a806-dc2d-4529-8dbc-f1aa2ebb6a3c',
    webhookSigningKey: 'nango-emulator-webhook-signing-key',
    webhookUrls: [],
    // Relative values are resolved against the emulator's own URL once it listens, so that a
    // port chosen at run time still yields a working connect_link.
    publicUrl: '/connect-ui/',
    integrations: [],
    retryDelaysMs: [3000, 6000],
    webhookTimeoutMs: 20000,
    sessionTtlMs: 30 * 60 * 1000,
    sendDeletionWebhooks: true,
    // Real Nango sends no webhook when an API key fails its credentials test; the project's flow
    // wants to exercise "creation + failure", so the emulator sends one unless told otherwise.
    sendFailedCredentialsWebhooks: true,
    includeCredentials: false,
    // Nango refuses webhook_url_override on loopback/private hosts; local tests may need them.
    allowPrivateWebhookOverride: false,
    // Seed of the fault controls' randomness (drop probabilities, reorder delays, API faults).
    seed: DEFAULT_SEED
};

// Settings POST /_emulator/config may change while the emulator runs (reset restores them).
export const RUNTIME_SETTINGS = [
    'webhookUrls',
    'retryDelaysMs',
    'webhookTimeoutMs',
    'sendDeletionWebhooks',
    'sendFailedCredentialsWebhooks',
    'includeCredentials',
    'allowPrivateWebhookOverride'
];

export function runtimeSettings(config) {
    return Object.fromEntries(RUNTIME_SETTINGS.map((key) => [key, structuredClone(config[key])]));
}

/** Fills defaults and checks the values a typo would otherwise turn into confusing behaviour. */
export function normalizeConfig(raw = {}) {
    const config = { ...DEFAULTS, ...raw };
    if (!UUID_V4.test(config.secretKey)) {
        throw new Error(`config.secretKey must be a UUID v4, got ${JSON.stringify(config.secretKey)}`);
    }
    if (typeof config.webhookSigningKey !== 'string' || config.webhookSigningKey.length === 0) {
        throw new Error('config.webhookSigningKey must be a non-empty string');
    }
    const problem = checkRuntimeSettings(config);
    if (problem) throw new Error(`config.${problem}`);
    if (!Number.isInteger(config.seed) || config.seed < 0) {
        throw new Error('config.seed must be a non-negative integer');
    }
    config.integrations = (config.integrations || []).map((integration) => {
        if (!integration.id || !integration.provider) {
            throw new Error(`every integration needs "id" and "provider": ${JSON.stringify(integration)}`);
        }
        return {
            id: integration.id,
            provider: integration.provider,
            authMode: integration.authMode || 'API_KEY',
            displayName: integration.displayName || integration.provider,
            createdAt: new Date(integration.createdAt || '2025-01-01T00:00:00.000Z')
        };
    });
    return config;
}

/** The first problem with the runtime settings present in `values`, or null. */
export function checkRuntimeSettings(values) {
    if ('webhookUrls' in values) {
        const urls = values.webhookUrls;
        if (!Array.isArray(urls) || !urls.every(isHttpUrl)) return 'webhookUrls must be an array of http(s) URLs';
    }
    if ('retryDelaysMs' in values) {
        const delays = values.retryDelaysMs;
        if (!Array.isArray(delays) || delays.some((d) => !Number.isFinite(d) || d < 0)) return 'retryDelaysMs must be an array of non-negative numbers';
    }
    if ('webhookTimeoutMs' in values && !(Number.isFinite(values.webhookTimeoutMs) && values.webhookTimeoutMs > 0)) {
        return 'webhookTimeoutMs must be a positive number';
    }
    for (const key of ['sendDeletionWebhooks', 'sendFailedCredentialsWebhooks', 'includeCredentials', 'allowPrivateWebhookOverride']) {
        if (key in values && typeof values[key] !== 'boolean') return `${key} must be true or false`;
    }
    return null;
}

function isHttpUrl(value) {
    try {
        return ['http:', 'https:'].includes(new URL(value).protocol);
    } catch {
        return false;
    }
}

export function loadConfigFile(path = DEFAULT_CONFIG_PATH) {
    return JSON.parse(readFileSync(path, 'utf8'));
}

/** Applies the NANGO_EMULATOR_* variables on top of a raw config object. */
export function applyEnvOverrides(raw, env = process.env) {
    const config = { ...raw };
    if (env.NANGO_EMULATOR_WEBHOOK_URLS !== undefined) {
        config.webhookUrls = env.NANGO_EMULATOR_WEBHOOK_URLS.split(',')
            .map((url) => url.trim())
            .filter(Boolean);
    }
    if (env.NANGO_EMULATOR_SECRET_KEY) {
        config.secretKey = env.NANGO_EMULATOR_SECRET_KEY;
    }
    if (env.NANGO_EMULATOR_WEBHOOK_SIGNING_KEY) {
        config.webhookSigningKey = env.NANGO_EMULATOR_WEBHOOK_SIGNING_KEY;
    }
    if (env.NANGO_EMULATOR_PUBLIC_URL) {
        config.publicUrl = env.NANGO_EMULATOR_PUBLIC_URL;
    }
    return config;
}

/** Reads `--config path` and `--port N` (also `--flag=value`). */
export function parseArgs(argv) {
    const out = {};
    for (let i = 0; i < argv.length; i++) {
        const arg = argv[i];
        const [flag, inline] = arg.split(/=(.*)/s, 2);
        const value = inline !== undefined ? inline : argv[++i];
        if (flag === '--config') {
            out.configPath = value;
        } else if (flag === '--port') {
            out.port = Number(value);
        } else {
            throw new Error(`unknown argument ${arg} (expected --config path, --port N)`);
        }
    }
    return out;
}

export function findIntegration(config, id) {
    return config.integrations.find((integration) => integration.id === id) || null;
}
