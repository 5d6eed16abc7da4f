import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { uniqueId } from '@service-foundry/test-support';
import { assertOsbError, call, postgresServiceId, provisionBody } from '@service-foundry/test-support/broker-calls';
import pg from 'pg';
import type { Harness } from './helpers.js';
import type { LocalPostgres } from './local-postgres.js';
import {
  bindBody,
  bindingPath,
  type PostgresInstance,
  startPostgresInstance,
  unbindPath,
} from './postgres-instance.js';

interface Binding {
  credentials: { host: string; port: number; username: string; password: string };
  endpoints?: Array<{ host: string; ports: string[]; protocol?: string }>;
  parameters?: Record<string, unknown>;
}

/** Whether the binding's user can log in; any error other than a refused login is thrown. */
async function canLogIn(login: Binding['credentials']): Promise<boolean> {
  const client = new pg.Client({
    host: login.host,
    port: login.port,
    user: login.username,
    password: login.password,
    database: 'sf',
    connectionTimeoutMillis: 5000,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch (error) {
    // 28P01 invalid_password (also an unknown role), 28000 invalid_authorization_specification.
    if (['28P01', '28000'].includes((error as { code?: string }).code ?? '')) return false;
    throw error;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * OSB v2.17 "Binding", "Fetching a Service Binding", "Unbinding" and binding polls, against
 * a real PostgreSQL standing in for the instance behind the router (postgres-instance.ts).
 */
describe('OSB: bindings', () => {
  let instance: PostgresInstance;
  let h: Harness;
  let postgres: LocalPostgres;
  const instanceId = uniqueId('osbdb');
  const bind = (id: string) => bindingPath(instanceId, id);

  before(async () => {
    instance = await startPostgresInstance(instanceId, { bindTimeoutMs: 10_000 });
    ({ h, postgres } = instance);
  });
  after(async () => {
    await instance?.close();
  });

  it('binds synchronously: 201 with unique credentials and the endpoints the app connects to (SHOULD)', async () => {
    const one = await h.call('PUT', bind('one'), { body: bindBody() });
    assert.equal(one.status, 201, one.text);
    const two = await h.call('PUT', `${bind('two')}?accepts_incomplete=true`, { body: bindBody() });
    assert.equal(two.status, 201, 'a synchronous broker may ignore accepts_incomplete');
    const a = one.body as Binding;
    const b = two.body as Binding;
    assert.notEqual(a.credentials.username, b.credentials.username, 'credentials unique per binding (SHOULD)');
    assert.deepEqual(a.endpoints, [{ host: a.credentials.host, ports: [String(a.credentials.port)], protocol: 'tcp' }]);
    assert.equal(a.credentials.port, postgres.port);
  });

  it('answers a re-sent identical bind with 200 and the same credentials, a different one with 409 (MUST)', async () => {
    const first = (await h.call('GET', bind('one'))).body as Binding;
    const again = await h.call('PUT', bind('one'), { body: bindBody() });
    assert.equal(again.status, 200);
    assert.deepEqual((again.body as Binding).credentials, first.credentials);
    const different = await h.call('PUT', bind('one'), { body: bindBody({ context: { platform: 'other' } }) });
    assert.equal(different.status, 409);
    assertOsbError(different.body, 'Conflict');
  });

  it('sends endpoints only to platforms of 2.15 and later', async () => {
    for (const [apiVersion, has] of [
      ['2.14', false],
      ['2.15', true],
      ['2.17', true],
    ] as const) {
      const fetched = await h.call('GET', bind('one'), { apiVersion });
      assert.equal(fetched.status, 200);
      assert.equal('endpoints' in (fetched.body as object), has, apiVersion);
      assert.ok((fetched.body as Binding).credentials, 'credentials always');
      const repeat = await h.call('PUT', bind('one'), { body: bindBody(), apiVersion });
      assert.equal('endpoints' in (repeat.body as object), has, `${apiVersion} bind`);
    }
  });

  it('rotates a binding (predecessor_binding_id): new credentials, both valid until each is unbound (MUST)', async () => {
    const predecessor = await h.call('PUT', bind('rot-a'), {
      body: bindBody({ context: { platform: 'cloudfoundry', binding_name: 'app-db' } }),
    });
    assert.equal(predecessor.status, 201, predecessor.text);
    // The body OSB gives for a rotation: the predecessor alone; parameters and context come from it.
    const rotation = { predecessor_binding_id: 'rot-a' };
    const successor = await h.call('PUT', bind('rot-b'), { body: rotation });
    assert.equal(successor.status, 201, successor.text);
    const a = (predecessor.body as Binding).credentials;
    const b = (successor.body as Binding).credentials;
    assert.notEqual(b.username, a.username, 'a new user');
    assert.notEqual(b.password, a.password, 'a new password');
    const fetched = (await h.call('GET', bind('rot-b'))).body as Binding;
    assert.deepEqual(fetched.parameters, {});
    for (const login of [a, b]) assert.equal(await canLogIn(login), true, `${login.username} logs in`);

    const again = await h.call('PUT', bind('rot-b'), { body: rotation });
    assert.equal(again.status, 200, 'a repeated rotation: the same binding');
    assert.deepEqual((again.body as Binding).credentials, b);
    assert.equal((await h.call('DELETE', unbindPath(instanceId, 'rot-a'))).status, 200);
    assert.equal(await canLogIn(a), false, 'the predecessor is revoked once unbound');
    assert.equal(await canLogIn(b), true, 'the successor lives on');
    assert.equal(
      (await h.call('PUT', bind('rot-b'), { body: rotation })).status,
      200,
      'even after its predecessor went',
    );
  });

  it('refuses a rotation of a binding that does not exist, of itself, or without ids from an older platform: 400, nothing created', async () => {
    const before = await h.dump();
    for (const [body, why] of [
      [{ predecessor_binding_id: 'never-bound' }, /not a binding of instance/],
      [{ predecessor_binding_id: 'rot-c' }, /its own predecessor/],
      [{ predecessor_binding_id: '' }, /predecessor_binding_id/],
    ] as const) {
      const res = await h.call('PUT', bind('rot-c'), { body });
      assert.equal(res.status, 400, res.text);
      assertOsbError(res.body, 'BadRequest');
      assert.match((res.body as { description: string }).description, why);
    }
    const older = await h.call('PUT', bind('rot-c'), { body: { predecessor_binding_id: 'one' }, apiVersion: '2.16' });
    assert.equal(older.status, 400, 'a 2.16 platform knows no rotation: service_id and plan_id stay required');
    assert.equal(await h.dump(), before);
    assert.equal((await h.call('GET', bind('rot-c'))).status, 404);
  });

  it('fetches a binding (bindings_retrievable): credentials, endpoints, parameters; 404 when absent (MUST)', async () => {
    const fetched = await h.call('GET', bind('one'));
    assert.equal(fetched.status, 200);
    const body = fetched.body as Binding;
    assert.ok(body.credentials.password.length > 0);
    assert.deepEqual(body.parameters, {});
    assert.equal((await h.call('GET', bind(uniqueId('none')))).status, 404);
  });

  it('answers a poll of a binding it made: succeeded', async () => {
    const res = await h.call('GET', `${bind('one')}/last_operation?service_id=${postgresServiceId}`);
    assert.equal(res.status, 200);
    assert.equal((res.body as { state: string }).state, 'succeeded');
  });

  it('refuses a bind to an instance that is not ready with 422 ConcurrencyError', async () => {
    const id = uniqueId('notready');
    // The harness's router ports are the one Postgres's; another broker gives this instance its own.
    const other = await h.extraBroker({ routerPortRange: { min: 42_000, max: 42_099 } });
    const created = await call(other.url, 'PUT', `/v2/service_instances/${id}?accepts_incomplete=true`, {
      body: provisionBody(),
    });
    assert.equal(created.status, 202, created.text);
    const res = await h.call('PUT', bindingPath(id, 'early'), { body: bindBody() });
    assert.equal(res.status, 422);
    assertOsbError(res.body, 'ConcurrencyError');
  });

  it('unbinds: 200 {} (the user is gone), then 410 Gone (MUST); service_id and plan_id are REQUIRED', async () => {
    const user = ((await h.call('GET', bind('two'))).body as Binding).credentials.username;
    const missing = await h.call('DELETE', `${bind('two')}?service_id=${postgresServiceId}`);
    assert.equal(missing.status, 400);
    const res = await h.call('DELETE', unbindPath(instanceId, 'two'));
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.body, {});
    const roles = await postgres.admin('SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1', [user]);
    assert.equal(roles.rowCount, 0, 'unbind deletes what the binding made (MUST)');
    const again = await h.call('DELETE', unbindPath(instanceId, 'two'));
    assert.equal(again.status, 410);
    assert.deepEqual(again.body, {});
  });
});
