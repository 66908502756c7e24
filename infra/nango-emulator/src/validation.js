// A tiny schema kit that reproduces the validation errors Nango's server gets from zod 4
// (`{code, message, path}` with zod's English messages and path semantics), because clients
// are expected to handle those exact bodies. Only the features Nango's schemas use are here.

const INVALID = Symbol('invalid');

function receivedType(value) {
    if (value === undefined) return 'undefined';
    if (value === null) return 'null';
    if (Array.isArray(value)) return 'array';
    if (typeof value === 'number' && Number.isNaN(value)) return 'NaN';
    return typeof value;
}

function typeIssue(expected, value, path) {
    return { code: 'invalid_type', message: `Invalid input: expected ${expected}, received ${receivedType(value)}`, path };
}

function isPlainObject(value) {
    return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// ---------- string checks (run in the order given, like zod's chained checks)

export const min = (n, message) => (value, path, issues) => {
    if (value.length < n) issues.push({ code: 'too_small', message: message ?? `Too small: expected string to have >=${n} characters`, path });
};
export const max = (n, message) => (value, path, issues) => {
    if (value.length > n) issues.push({ code: 'too_big', message: message ?? `Too big: expected string to have <=${n} characters`, path });
};
export const regex = (re, message) => (value, path, issues) => {
    if (!re.test(value)) issues.push({ code: 'invalid_format', message: message ?? `Invalid string: must match pattern ${re}`, path });
};
// zod 4's email pattern.
const EMAIL = /^(?!\.)(?!.*\.\.)([A-Za-z0-9_'+\-.]*)[A-Za-z0-9_+-]@([A-Za-z0-9][A-Za-z0-9-]*\.)+[A-Za-z]{2,}$/;
export const email = () => (value, path, issues) => {
    if (!EMAIL.test(value)) issues.push({ code: 'invalid_format', message: 'Invalid email address', path });
};
export const isEmail = (value) => typeof value === 'string' && EMAIL.test(value) && value.length >= 5;

// ---------- schemas: { parse(value, path, issues, ctx) -> value | INVALID, optional? }

export function string(...checks) {
    return {
        parse(value, path, issues) {
            if (typeof value !== 'string') {
                issues.push(typeIssue('string', value, path));
                return INVALID;
            }
            for (const check of checks) check(value, path, issues);
            return value;
        }
    };
}

export function optional(schema) {
    return {
        optional: true,
        parse(value, path, issues, ctx) {
            return value === undefined ? undefined : schema.parse(value, path, issues, ctx);
        }
    };
}

/** mode: 'strict' (unknown keys are an error), 'strip' (dropped) or 'loose' (kept). */
export function object(shape, mode = 'strict') {
    return {
        parse(value, path, issues, ctx) {
            if (!isPlainObject(value)) {
                issues.push(typeIssue('object', value, path));
                return INVALID;
            }
            const out = mode === 'loose' ? { ...value } : {};
            for (const [key, schema] of Object.entries(shape)) {
                const item = value[key];
                if (item === undefined && schema.optional) continue;
                const parsed = schema.parse(item, [...path, key], issues, ctx);
                if (parsed !== undefined) out[key] = parsed;
            }
            const unknown = Object.keys(value).filter((key) => !(key in shape));
            if (mode === 'strict' && unknown.length > 0) {
                // zod reports unknown keys on the object itself (path = the object's path), naming them in the message.
                const names = unknown.map((key) => `"${key}"`).join(', ');
                issues.push({ code: 'unrecognized_keys', message: `Unrecognized key${unknown.length > 1 ? 's' : ''}: ${names}`, path });
            }
            return out;
        }
    };
}

export function record(keySchema, valueSchema) {
    return {
        parse(value, path, issues, ctx) {
            if (!isPlainObject(value)) {
                issues.push(typeIssue('record', value, path));
                return INVALID;
            }
            const out = {};
            for (const [key, item] of Object.entries(value)) {
                const keyIssues = [];
                keySchema.parse(key, [], keyIssues, ctx);
                if (keyIssues.length > 0) {
                    issues.push({ code: 'invalid_key', message: 'Invalid key in record', path: [...path, key] });
                    continue;
                }
                out[key] = valueSchema.parse(item, [...path, key], issues, ctx);
            }
            return out;
        }
    };
}

export function array(itemSchema) {
    return {
        parse(value, path, issues, ctx) {
            if (!Array.isArray(value)) {
                issues.push(typeIssue('array', value, path));
                return INVALID;
            }
            return value.map((item, i) => itemSchema.parse(item, [...path, i], issues, ctx));
        }
    };
}

/** z.coerce.number() with inclusive bounds. */
export function coercedNumber({ minimum, maximum } = {}) {
    return {
        parse(value, path, issues) {
            const n = Number(value);
            if (Number.isNaN(n)) {
                issues.push(typeIssue('number', n, path));
                return INVALID;
            }
            if (minimum !== undefined && n < minimum) issues.push({ code: 'too_small', message: `Too small: expected number to be >=${minimum}`, path });
            if (maximum !== undefined && n > maximum) issues.push({ code: 'too_big', message: `Too big: expected number to be <=${maximum}`, path });
            return n;
        }
    };
}

const STRINGBOOL_TRUE = ['true', '1', 'yes', 'on', 'y', 'enabled'];
const STRINGBOOL_FALSE = ['false', '0', 'no', 'off', 'n', 'disabled'];
export function stringbool() {
    return {
        parse(value, path, issues) {
            if (typeof value !== 'string') {
                issues.push(typeIssue('string', value, path));
                return INVALID;
            }
            const lower = value.toLowerCase();
            if (STRINGBOOL_TRUE.includes(lower)) return true;
            if (STRINGBOOL_FALSE.includes(lower)) return false;
            const options = [...STRINGBOOL_TRUE, ...STRINGBOOL_FALSE].map((o) => `"${o}"`).join('|');
            issues.push({ code: 'invalid_value', message: `Invalid option: expected one of ${options}`, path });
            return INVALID;
        }
    };
}

/**
 * Runs `check` (which returns messages) and then `transform` only when the inner schema found no
 * problem, as zod skips `.check()`/`.transform()` once a value is invalid.
 */
export function refine(schema, { check, transform } = {}) {
    return {
        optional: schema.optional,
        parse(value, path, issues, ctx) {
            const before = issues.length;
            const parsed = schema.parse(value, path, issues, ctx);
            if (issues.length > before || parsed === INVALID || parsed === undefined) return parsed;
            if (check) {
                for (const message of check(parsed, ctx)) issues.push({ code: 'custom', message, path });
                if (issues.length > before) return parsed;
            }
            return transform ? transform(parsed) : parsed;
        }
    };
}

/** Returns `{ok: true, value}` or `{ok: false, errors}` with paths as strings, as Nango's zodErrorToHTTP does. */
export function validate(schema, value, ctx = {}) {
    const issues = [];
    const parsed = schema.parse(value, [], issues, ctx);
    if (issues.length > 0) {
        return { ok: false, errors: issues.map(({ code, message, path }) => ({ code, message, path: path.map(String) })) };
    }
    return { ok: true, value: parsed };
}

export const emptyObject = object({});

// ---------- Nango's schemas

export const TAG_MAX_COUNT = 10;

const providerConfigKey = string(regex(/^[a-zA-Z0-9~:.@ _-]+$/), max(255));
export const connectionIdParam = string(regex(/^[a-zA-Z0-9,.;:=+~[\]|@${}"'\\/_ -]+$/), max(255));

const tagKey = string(
    regex(/^[a-zA-Z][a-zA-Z0-9_\-./]*$/, 'Tag keys must start with a letter and contain only alphanumerics, underscores, hyphens, periods, or slashes'),
    max(64, 'Tag keys must be at most 64 characters')
);

function tagRules(tags) {
    const entries = Object.entries(tags);
    if (entries.length > TAG_MAX_COUNT) {
        return [`Tags cannot contain more than ${TAG_MAX_COUNT} keys`];
    }
    const messages = [];
    const seen = new Set();
    for (const [key, value] of entries) {
        const normalized = key.toLowerCase();
        if (seen.has(normalized)) messages.push(`Duplicate tag key after case normalization: "${normalized}"`);
        seen.add(normalized);
        if (normalized === 'end_user_email' && !isEmail(value)) messages.push('Tag "end_user_email" must be a valid email');
    }
    return messages;
}

export function lowercaseKeys(tags) {
    return Object.fromEntries(Object.entries(tags).map(([key, value]) => [key.toLowerCase(), value]));
}

export const connectionTags = refine(record(tagKey, string(min(1), max(255, 'Tag values must be at most 255 characters'))), {
    check: tagRules,
    transform: lowercaseKeys
});

const endUserTags = refine(record(tagKey, string(max(255))), { check: tagRules });

export const endUser = object({
    id: string(max(255), min(1)),
    email: optional(string(email(), min(5))),
    display_name: optional(string(max(255))),
    tags: optional(endUserTags)
});

const organization = optional(
    object({
        id: string(max(255), min(0)),
        display_name: optional(string(max(255)))
    })
);

const integrationsConfigDefaults = optional(
    record(
        providerConfigKey,
        object({
            user_scopes: optional(string()),
            authorization_params: optional(record(string(), string())),
            connection_config: optional(object({ oauth_scopes_override: optional(string()) }, 'loose'))
        })
    )
);

const overrides = optional(record(providerConfigKey, object({ docs_connect: optional(string()) }, 'strip')));

function isPrivateHost(hostname) {
    const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
    if (host === 'localhost' || host.endsWith('.localhost') || host === '::1' || host === '::' || host === '0.0.0.0') return true;
    const v4 = host.match(/^(\d+)\.(\d+)\.(\d+)\.(\d+)$/);
    if (v4) {
        const [a, b] = [Number(v4[1]), Number(v4[2])];
        return a === 127 || a === 10 || a === 0 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) || (a === 169 && b === 254);
    }
    return /^(fc|fd|fe8|fe9|fea|feb)/.test(host) && host.includes(':');
}

// z.union([z.url(), z.literal('')]) plus Nango's two refinements.
const webhookUrlOverride = {
    optional: true,
    parse(value, path, issues, ctx) {
        if (value === undefined || value === '') return value;
        let url = null;
        if (typeof value === 'string') {
            try {
                url = new URL(value);
            } catch {
                url = null;
            }
        }
        if (!url) {
            issues.push({ code: 'invalid_union', message: 'Invalid input', path });
            return INVALID;
        }
        const hostname = url.hostname.replace(/\.+$/, '');
        if (hostname === 'nango.dev' || hostname.endsWith('.nango.dev')) {
            issues.push({ code: 'custom', message: "Webhook URLs cannot point to Nango's domain (nango.dev).", path });
        }
        const allowed = ['http:', 'https:'].includes(url.protocol) && (ctx.allowPrivateWebhookOverride || !isPrivateHost(hostname));
        if (!allowed) {
            issues.push({ code: 'custom', message: 'This webhook URL is not allowed.', path });
        }
        return value;
    }
};

const sessionShape = {
    end_user: endUser,
    organization,
    allowed_integrations: optional(array(providerConfigKey)),
    integrations_config_defaults: integrationsConfigDefaults,
    overrides,
    webhook_url_override: webhookUrlOverride,
    tags: optional(connectionTags)
};

export const postSessionBody = object(sessionShape);
// Nango retries with this variant when the body has `tags` but no `end_user`.
export const postSessionBodyTagsOnly = object({ ...sessionShape, end_user: optional(endUser), tags: connectionTags });

export const postReconnectBody = object({
    connection_id: connectionIdParam,
    integration_id: providerConfigKey,
    end_user: optional(endUser),
    organization,
    integrations_config_defaults: integrationsConfigDefaults,
    overrides,
    webhook_url_override: webhookUrlOverride,
    tags: optional(connectionTags)
});

export const getConnectionsQuery = object({
    connectionId: optional(string(min(1), max(255))),
    search: optional(string(min(1), max(255))),
    endUserId: optional(string(max(255), min(1))),
    integrationId: optional(string(min(1))),
    endUserOrganizationId: optional(string(max(255), min(1))),
    tags: optional(connectionTags),
    limit: optional(coercedNumber({ minimum: 1, maximum: 2000 })),
    page: optional(coercedNumber({ minimum: 0 }))
});

export const getConnectionQuery = object({
    provider_config_key: providerConfigKey,
    refresh_token: optional(stringbool()),
    force_refresh: optional(stringbool()),
    refresh_github_app_jwt_token: optional(stringbool())
});

export const deleteConnectionQuery = object({ provider_config_key: providerConfigKey });

export const connectionIdParams = object({ connectionId: connectionIdParam });
export const providerConfigKeyParams = object({ providerConfigKey });

export const apiKeyBody = object({ apiKey: string(min(1), max(1024)) });

// Not strict: Nango accepts extra query keys on the auth routes.
export const apiAuthQuery = object(
    {
        connection_id: optional(connectionIdParam),
        params: optional(object({}, 'loose'))
    },
    'loose'
);
