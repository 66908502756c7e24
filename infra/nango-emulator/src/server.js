import http from 'node:http';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { createApp, withErrors } from './app.js';
import { DEFAULT_CONFIG_PATH, DEFAULT_PORT, applyEnvOverrides, loadConfigFile, normalizeConfig, parseArgs, runtimeSettings } from './config.js';
import { ApiFaults } from './faults.js';
import { seededRandom } from './random.js';
import { RequestCounts } from './requests.js';
import { Store } from './store.js';
import { WebhookSender, authWebhookBody } from './webhooks.js';

const HOST = '127.0.0.1';

// Two generators from one seed, so that faults on the API do not shift webhook delays.
const webhookSeed = (seed) => seed;
const faultSeed = (seed) => (seed ^ 0x9e3779b9) >>> 0;

/**
 * Starts an emulator on 127.0.0.1. `config` is a raw config object (missing fields take the
 * defaults); `port` 0 picks a free port. Resolves to {url, port, config, store, close()}.
 */
export async function startEmulator({ port = DEFAULT_PORT, config = {}, log = () => {} } = {}) {
    const settings = normalizeConfig(config);
    const startupSettings = runtimeSettings(settings);
    const store = new Store({ sessionTtlMs: settings.sessionTtlMs });
    const webhooks = new WebhookSender(settings, store.webhookLog, seededRandom(webhookSeed(settings.seed)));
    const faults = new ApiFaults(seededRandom(faultSeed(settings.seed)));
    const requests = new RequestCounts();
    // The configured integrations, for reset: DELETE /_emulator/integrations/{id} removes some.
    const startupIntegrations = settings.integrations;
    let baseUrl = null;

    const ctx = {
        config: settings,
        store,
        webhooks,
        faults,
        requests,
        configuredIntegrations: startupIntegrations,
        /** Restarts both generators, so a run that names its seed replays the same drops, delays and faults. */
        reseed: (seed) => {
            webhooks.random = seededRandom(webhookSeed(seed));
            faults.random = seededRandom(faultSeed(seed));
        },
        /** POST /_emulator/reset: empty state, no faults, the settings the emulator started with. */
        reset: () => {
            store.reset();
            webhooks.resetFaults(seededRandom(webhookSeed(settings.seed)));
            faults.reset(seededRandom(faultSeed(settings.seed)));
            Object.assign(settings, structuredClone(startupSettings));
            settings.integrations = [...startupIntegrations];
            requests.clear();
        },
        connectUiUrl: () => new URL(settings.publicUrl, `${baseUrl}/`).toString(),
        sendWebhook: (payload, webhookUrlOverride) => webhooks.send(payload, { webhookUrlOverride }),
        /** An auth webhook about a stored connection, to its override URL if it has one. */
        sendAuthWebhook: (connection, { operation, success, tags, endUser, error }) =>
            webhooks.send(
                authWebhookBody({
                    connectionId: connection.connection_id,
                    providerConfigKey: connection.provider_config_key,
                    provider: connection.provider,
                    authMode: connection.auth_mode,
                    environment: settings.environment,
                    operation,
                    success,
                    tags,
                    endUser,
                    error
                }),
                { webhookUrlOverride: connection.webhook_url_override }
            )
    };

    const server = http.createServer(withErrors(createApp(ctx)));
    await new Promise((resolvePromise, reject) => {
        server.once('error', reject);
        server.listen(port, HOST, () => {
            server.off('error', reject);
            resolvePromise();
        });
    });
    const actualPort = server.address().port;
    baseUrl = `http://${HOST}:${actualPort}`;
    log(`nango emulator listening on ${baseUrl}`);

    return {
        url: baseUrl,
        port: actualPort,
        config: settings,
        store,
        close: () =>
            new Promise((resolvePromise) => {
                webhooks.close();
                faults.close();
                server.close(() => resolvePromise());
                server.closeAllConnections();
            })
    };
}

async function main() {
    const args = parseArgs(process.argv.slice(2));
    const configPath = resolve(args.configPath || process.env.NANGO_EMULATOR_CONFIG || DEFAULT_CONFIG_PATH);
    const config = applyEnvOverrides(loadConfigFile(configPath));
    const port = args.port ?? (process.env.NANGO_EMULATOR_PORT ? Number(process.env.NANGO_EMULATOR_PORT) : DEFAULT_PORT);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`invalid port ${port}`);

    const emulator = await startEmulator({ port, config, log: (line) => console.log(line) });
    let stopping = false;
    const stop = async (signal) => {
        if (stopping) return;
        stopping = true;
        console.log(`nango emulator stopping (${signal})`);
        await emulator.close();
        process.exit(0);
    };
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGTERM', () => stop('SIGTERM'));
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
    main().catch((err) => {
        console.error(`nango emulator: ${err.message}`);
        process.exit(1);
    });
}
