import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { SECRET_KEY, authorize, createConnections, eventually, emulatorWithSink } from '../testkit/index.js';

// The contract of GET /connections, GET and DELETE /connections/{id}, as Nango 0.71 answers
// them (shared/docs/nango-api.md §4 and Nango's getConnections / listConnections).

const stack = emulatorWithSink();

const list = (query) => stack.api.get(`/connections${query ? `?${query}` : ''}`, { token: SECRET_KEY });
const ids = async (query) => {
    const res = await list(query);
    assert.equal(res.status, 200, res.text);
    return res.body.connections.map((c) => c.connection_id);
};
const make = (spec) => createConnections(stack.api, { webhook: false, ...spec });

function assertQueryError(res, errors) {
    assert.equal(res.status, 400, res.text);
    assert.deepEqual(res.body, { error: { code: 'invalid_query_params', errors } });
}

describe('GET /connections: strict query', () => {
    test('limit must be within 1..2000', async () => {
        assertQueryError(await list('limit=0'), [{ code: 'too_small', message: 'Too small: expected number to be >=1', path: ['limit'] }]);
        assertQueryError(await list('limit=2001'), [{ code: 'too_big', message: 'Too big: expected number to be <=2000', path: ['limit'] }]);
        assertQueryError(await list('limit=-5'), [{ code: 'too_small', message: 'Too small: expected number to be >=1', path: ['limit'] }]);
        // z.coerce.number(): an empty value is Number("") = 0.
        assertQueryError(await list('limit='), [{ code: 'too_small', message: 'Too small: expected number to be >=1', path: ['limit'] }]);
        assert.equal((await list('limit=1')).status, 200);
        assert.equal((await list('limit=2000')).status, 200);
    });

    test('a limit or page that is not a number is refused', async () => {
        assertQueryError(await list('limit=ten'), [{ code: 'invalid_type', message: 'Invalid input: expected number, received NaN', path: ['limit'] }]);
        assertQueryError(await list('limit=10&page=first'), [{ code: 'invalid_type', message: 'Invalid input: expected number, received NaN', path: ['page'] }]);
        assertQueryError(await list('limit=1&limit=2'), [{ code: 'invalid_type', message: 'Invalid input: expected number, received NaN', path: ['limit'] }]);
    });

    test('a fractional limit or page is accepted and truncated, as z.coerce.number() and knex do', async () => {
        const made = await make({ integration: 'exa', count: 5 });
        const newestFirst = made.map((c) => c.connection_id).reverse();
        assert.deepEqual(await ids('limit=1.5'), newestFirst.slice(0, 1));
        // OFFSET parseInt(1 * 2.5) = 2, LIMIT parseInt(2.5) = 2.
        assert.deepEqual(await ids('limit=2.5&page=1'), newestFirst.slice(2, 4));
    });

    test('page must be >= 0', async () => {
        assertQueryError(await list('limit=10&page=-1'), [{ code: 'too_small', message: 'Too small: expected number to be >=0', path: ['page'] }]);
        assert.equal((await list('limit=10&page=0')).status, 200);
    });

    test('any unknown parameter is refused, with every unknown key named', async () => {
        assertQueryError(await list('limit=10&userId=u1'), [{ code: 'unrecognized_keys', message: 'Unrecognized key: "userId"', path: [] }]);
        assertQueryError(await list('cursor=x&offset=2&limit=10'), [{ code: 'unrecognized_keys', message: 'Unrecognized keys: "cursor", "offset"', path: [] }]);
        assertQueryError(await list('limit=10&provider_config_key=exa'), [{ code: 'unrecognized_keys', message: 'Unrecognized key: "provider_config_key"', path: [] }]);
    });

    test('tags must be a valid tag record; connectionId and search 1..255 characters', async () => {
        assertQueryError(await list('tags[9bad]=x'), [{ code: 'invalid_key', message: 'Invalid key in record', path: ['tags', '9bad'] }]);
        assertQueryError(await list('tags=x'), [{ code: 'invalid_type', message: 'Invalid input: expected record, received string', path: ['tags'] }]);
        assertQueryError(await list('tags[end_user_id]='), [{ code: 'too_small', message: 'Too small: expected string to have >=1 characters', path: ['tags', 'end_user_id'] }]);
        assertQueryError(await list('connectionId='), [{ code: 'too_small', message: 'Too small: expected string to have >=1 characters', path: ['connectionId'] }]);
        assertQueryError(await list(`search=${'s'.repeat(256)}`), [{ code: 'too_big', message: 'Too big: expected string to have <=255 characters', path: ['search'] }]);
    });

    test('without limit, Nango answers at most 10,000 rows', async () => {
        await make({ integration: 'exa', count: 10_001 });
        const all = await list('');
        assert.equal(all.status, 200);
        assert.equal(all.body.connections.length, 10_000);
        assert.equal((await list('page=1')).body.connections.length, 1);
    });
});

describe('GET /connections: rows and order', () => {
    test('a row has exactly Nango’s fields; auth errors appear as {type:"auth", log_id}', async () => {
        const [broken] = await make({ integration: 'github', tags: { End_User_Id: 'u1', organization_id: 'o1' }, authError: true, createdAt: '2026-01-02T03:04:05.120Z' });
        const [row] = (await list('limit=10')).body.connections;
        assert.deepEqual(Object.keys(row), ['id', 'connection_id', 'provider_config_key', 'provider', 'errors', 'end_user', 'tags', 'metadata', 'created']);
        assert.equal(row.id, broken.id);
        assert.equal(row.connection_id, broken.connection_id);
        assert.equal(row.provider_config_key, 'github');
        assert.equal(row.provider, 'github');
        assert.equal(row.errors.length, 1);
        assert.deepEqual(Object.keys(row.errors[0]), ['type', 'log_id']);
        assert.equal(row.errors[0].type, 'auth');
        assert.match(row.errors[0].log_id, /^[A-Za-z0-9]{20}$/);
        assert.equal(row.end_user, null);
        // Tag keys are lowercased by Nango; jsonb orders shorter keys first.
        assert.deepEqual(row.tags, { end_user_id: 'u1', organization_id: 'o1' });
        assert.deepEqual(row.metadata, {});
        assert.equal(row.created, '2026-01-02T03:04:05.12+00:00');
    });

    test('newest first by created_at, then by id for equal times', async () => {
        const sameTime = '2026-03-01T00:00:00.000Z';
        const [a, b] = await make({ integration: 'exa', count: 2, createdAt: sameTime });
        const [older] = await make({ integration: 'exa', createdAt: '2026-02-01T00:00:00.000Z' });
        const [newer] = await make({ integration: 'exa', createdAt: '2026-04-01T00:00:00.000Z' });
        assert.deepEqual(await ids('limit=10'), [newer, b, a, older].map((c) => c.connection_id));
    });

    test('offset paging: page k holds rows k*limit .. k*limit+limit-1, and an empty page ends the list', async () => {
        const made = await make({ integration: 'exa', count: 7 });
        const newestFirst = made.map((c) => c.connection_id).reverse();
        const pages = [];
        for (let page = 0; page < 4; page++) pages.push(await ids(`limit=3&page=${page}`));
        assert.deepEqual(pages, [newestFirst.slice(0, 3), newestFirst.slice(3, 6), newestFirst.slice(6), []]);
    });

    test('rows shift across pages when a connection is deleted while paging (offset paging)', async () => {
        const made = await make({ integration: 'exa', count: 4 });
        const newestFirst = made.map((c) => c.connection_id).reverse();
        assert.deepEqual(await ids('limit=2&page=0'), newestFirst.slice(0, 2));
        assert.equal((await stack.api.del(`/connections/${newestFirst[0]}?provider_config_key=exa`, { token: SECRET_KEY })).status, 200);
        // The row that was third is now second, on page 0: page 1 no longer shows it.
        assert.deepEqual(await ids('limit=2&page=1'), [newestFirst[3]]);
    });

    test('filters: connectionId, integrationId (comma list), tags (all must match), search', async () => {
        const [a] = await make({ integration: 'exa', tags: { end_user_id: 'u1', organization_id: 'o1' } });
        const [b] = await make({ integration: 'github', tags: { end_user_id: 'u1', organization_id: 'o2' } });
        const [c] = await make({ integration: 'linear', tags: { end_user_id: 'u2', organization_id: 'o1' }, connectionId: 'Team_Alpha-1' });
        assert.deepEqual(await ids(`connectionId=${b.connection_id}&limit=10`), [b.connection_id]);
        assert.deepEqual(await ids('integrationId=exa, linear&limit=10'), [c.connection_id, a.connection_id]);
        assert.deepEqual(await ids('tags[end_user_id]=u1&limit=10'), [b.connection_id, a.connection_id]);
        assert.deepEqual(await ids('tags[end_user_id]=u1&tags[organization_id]=o1&limit=10'), [a.connection_id]);
        assert.deepEqual(await ids('tags[END_USER_ID]=u2&limit=10'), [c.connection_id], 'tag keys are lowercased');
        assert.deepEqual(await ids('tags[end_user_id]=U1&limit=10'), [], 'tag values match exactly');
        assert.deepEqual(await ids('tags[missing]=x&limit=10'), []);
        // search is ILIKE '%…%' on connection_id (and the deprecated end user's name and email).
        assert.deepEqual(await ids('search=team_alpha&limit=10'), [c.connection_id]);
        assert.deepEqual(await ids('search=TEAM%25ALPHA&limit=10'), [c.connection_id], '% is a wildcard');
        assert.deepEqual(await ids('search=Team_Alph_-&limit=10'), [c.connection_id], '_ matches any one character');
        assert.deepEqual(await ids('search=zzz&limit=10'), []);
    });

    test('connectionId is an exact match (no prefix, case or wildcard match); integrationId narrows it; deleted ones are gone', async () => {
        // The lookup a receiver uses to confirm a webhook: GET /connections?connectionId=&integrationId=&limit=.
        const [exa] = await make({ integration: 'exa', connectionId: 'shared-id_1' });
        const [github] = await make({ integration: 'github', connectionId: 'shared-id_1' });
        await make({ integration: 'exa', connectionId: 'shared-id_10' });
        await make({ integration: 'exa', connectionId: 'Shared-ID_1' });
        assert.deepEqual(await ids('connectionId=shared-id_1&limit=10'), [github.connection_id, exa.connection_id], 'both integrations, newest first');
        assert.deepEqual(await ids('connectionId=shared-id_1&integrationId=exa&limit=1'), ['shared-id_1']);
        const [row] = (await list('connectionId=shared-id_1&integrationId=github&limit=1')).body.connections;
        assert.equal(row.provider_config_key, 'github');
        assert.deepEqual(await ids('connectionId=shared-id_1&integrationId=linear&limit=10'), []);
        for (const near of ['shared-id', 'SHARED-ID_1', 'shared-id%', 'shared-id_%', 'shared%25', ' shared-id_1', 'hared-id_1']) {
            assert.deepEqual(await ids(`connectionId=${encodeURIComponent(near)}&limit=10`), [], near);
        }
        assert.deepEqual(await ids('connectionId=shared-id_1'), [github.connection_id, exa.connection_id], 'limit may be left out');
        assert.equal((await stack.api.del('/connections/shared-id_1?provider_config_key=exa', { token: SECRET_KEY })).status, 200);
        assert.deepEqual(await ids('connectionId=shared-id_1&integrationId=exa&limit=1'), [], 'deleted: not listed');
        assert.deepEqual(await ids('connectionId=shared-id_1&limit=10'), [github.connection_id]);
    });

    test('deleted connections are not listed', async () => {
        const [a, b] = await make({ integration: 'exa', count: 2 });
        await stack.api.del(`/connections/${a.connection_id}?provider_config_key=exa`, { token: SECRET_KEY });
        assert.deepEqual(await ids('limit=10'), [b.connection_id]);
    });
});

describe('GET and DELETE /connections/{id}', () => {
    test('DELETE → 200 {success:true}; again → 400 unknown_connection; GET → 404; reconnect refused', async () => {
        const [conn] = await make({ integration: 'exa', tags: { end_user_id: 'u1' } });
        const path = `/connections/${conn.connection_id}?provider_config_key=exa`;
        assert.equal((await stack.api.get(path, { token: SECRET_KEY })).status, 200);

        const deleted = await stack.api.del(path, { token: SECRET_KEY });
        assert.equal(deleted.status, 200);
        assert.deepEqual(deleted.body, { success: true });

        const again = await stack.api.del(path, { token: SECRET_KEY });
        assert.equal(again.status, 400);
        assert.deepEqual(again.body, { error: { code: 'unknown_connection' } });

        const gone = await stack.api.get(path, { token: SECRET_KEY });
        assert.equal(gone.status, 404);
        assert.deepEqual(gone.body, { error: { code: 'not_found', message: 'Failed to find connection' } });

        const reconnect = await stack.api.post('/connect/sessions/reconnect', { connection_id: conn.connection_id, integration_id: 'exa' }, { token: SECRET_KEY });
        assert.equal(reconnect.status, 400);
        assert.deepEqual(reconnect.body, { error: { code: 'invalid_body', message: 'ConnectionID or IntegrationId does not exists' } });
    });

    test('DELETE needs the connection’s own provider_config_key and nothing else in the query', async () => {
        const [conn] = await make({ integration: 'exa' });
        const wrongKey = await stack.api.del(`/connections/${conn.connection_id}?provider_config_key=github`, { token: SECRET_KEY });
        assert.equal(wrongKey.status, 400);
        assert.deepEqual(wrongKey.body, { error: { code: 'unknown_connection' } });
        assertQueryError(await stack.api.del(`/connections/${conn.connection_id}`, { token: SECRET_KEY }), [
            { code: 'invalid_type', message: 'Invalid input: expected string, received undefined', path: ['provider_config_key'] }
        ]);
        assertQueryError(await stack.api.del(`/connections/${conn.connection_id}?provider_config_key=exa&force=true`, { token: SECRET_KEY }), [
            { code: 'unrecognized_keys', message: 'Unrecognized key: "force"', path: [] }
        ]);
        assert.equal((await stack.api.get(`/connections/${conn.connection_id}?provider_config_key=exa`, { token: SECRET_KEY })).status, 200, 'still there');
    });

    test('an API-authorized connection is deleted with a deletion webhook carrying its tags', async () => {
        const { res } = await authorize(stack.api, { integration: 'github', session: { tags: { end_user_id: 'u9' } } });
        const { connectionId } = res.body;
        await stack.sink.waitFor(1);
        assert.equal((await stack.api.del(`/connections/${connectionId}?provider_config_key=github`, { token: SECRET_KEY })).status, 200);
        const [, deletion] = await stack.sink.waitFor(2);
        const body = JSON.parse(deletion.body);
        assert.equal(body.operation, 'deletion');
        assert.equal(body.success, true);
        assert.equal(body.connectionId, connectionId);
        assert.deepEqual(body.tags, { end_user_id: 'u9' });
    });

    test('with deletion webhooks switched off at run time, DELETE sends none', async () => {
        const [conn] = await make({ integration: 'exa' });
        const off = await stack.api.post('/_emulator/config', { sendDeletionWebhooks: false });
        assert.equal(off.status, 200);
        assert.equal(off.body.sendDeletionWebhooks, false);
        assert.equal((await stack.api.del(`/connections/${conn.connection_id}?provider_config_key=exa`, { token: SECRET_KEY })).status, 200);
        await new Promise((resolve) => setTimeout(resolve, 50));
        assert.deepEqual((await stack.api.get('/_emulator/webhooks')).body.webhooks, []);
        assert.equal(stack.sink.requests.length, 0);

        // A reset restores the settings the emulator started with.
        await stack.api.post('/_emulator/reset');
        assert.equal((await stack.api.get('/_emulator/config')).body.sendDeletionWebhooks, true);
        const [next] = await make({ integration: 'exa' });
        await stack.api.del(`/connections/${next.connection_id}?provider_config_key=exa`, { token: SECRET_KEY });
        await eventually(async () => (await stack.api.get('/_emulator/webhooks?operation=deletion')).body.webhooks.length === 1);
    });
});
