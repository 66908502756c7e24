import { connectionTags, validate, TAG_MAX_COUNT } from './validation.js';

// How Nango turns the deprecated `end_user`/`organization` objects into connection tags
// (buildTagsFromEndUser): best effort, values truncated, invalid end_user.tags keys dropped.

const KEY_MAX = 64;
const VALUE_MAX = 255;
const KEY_FORMAT = /^[a-zA-Z][a-zA-Z0-9_\-./]*$/;

export function tagsFromEndUser(endUser, organization) {
    const base = {};
    const set = (key, value) => {
        if (typeof value !== 'string') return;
        const truncated = value.slice(0, VALUE_MAX);
        if (truncated.length > 0) base[key] = truncated;
    };
    if (endUser) {
        set('end_user_id', endUser.id);
        set('end_user_email', endUser.email);
        set('end_user_display_name', endUser.display_name);
    }
    if (organization) {
        set('organization_id', organization.id);
        set('organization_display_name', organization.display_name);
    }

    const extra = {};
    for (const [rawKey, rawValue] of Object.entries(endUser?.tags || {})) {
        if (typeof rawValue !== 'string') continue;
        const key = rawKey.toLowerCase().slice(0, KEY_MAX);
        if (!KEY_FORMAT.test(key)) continue;
        extra[key] = rawValue.slice(0, VALUE_MAX);
    }

    let tags = base;
    if (Object.keys(extra).length > 0) {
        tags = { ...base, ...extra };
        if (Object.keys(tags).length > TAG_MAX_COUNT) tags = base;
    }
    if (Object.keys(tags).length === 0) return {};

    const checked = validate(connectionTags, tags);
    if (checked.ok) return checked.value;
    const fallback = validate(connectionTags, base);
    return fallback.ok ? fallback.value : {};
}

/** Nango's EndUserMapper.apiToEndUser: the session's view of a deprecated end_user. */
export function endUserFromApi(endUser, organization) {
    return {
        endUserId: endUser.id,
        email: endUser.email || null,
        displayName: endUser.display_name || null,
        tags: endUser.tags || null,
        organization: organization ? { organizationId: organization.id, displayName: organization.display_name || null } : null
    };
}

/** The API shape of an end user, as GET /connections and GET /connect/session return it. */
export function endUserToApi(endUser) {
    if (!endUser) return null;
    return {
        id: endUser.endUserId,
        display_name: endUser.displayName || null,
        email: endUser.email || null,
        tags: endUser.tags || null,
        organization: endUser.organization
            ? { id: endUser.organization.organizationId, display_name: endUser.organization.displayName || null }
            : null
    };
}
