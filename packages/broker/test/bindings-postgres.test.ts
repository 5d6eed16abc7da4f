import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { bindingCodec, readSealed } from '@service-foundry/core';
import { secretBox, uniqueId } from '@service-foundry/test-support';
import { assertOsbError } from '@service-foundry/test-support/broker-calls';
import pg from 'pg';
import type { InstanceDetail } from '../src/index.js';
import type { Harness } from './helpers.js';
import type { LocalPostgres } from './local-postgres.js';
import {
  bindBody,
  bindingPath as bindingPathOf,
  type PostgresInstance,
  startPostgresInstance,
  unbindPath as unbindPathOf,
} from './postgres-instance.js';

interface Credentials {
  host: string;
  port: number;
  database: string;
  username: string;
  password: string;
  uri: string;
  jdbcUrl: string;
}

async function asUser(uri: string, sql: string): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: uri, connectionTimeoutMillis: 5000 });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await client.query(sql);
  } finally {
    await client.end();
  }
}

/**
 * Bindings against a real PostgreSQL standing in for an instance behind the router: the
 * instance's router port is the server's port, and the server's admin password is set from
 * the instance secret the broker generated (as the agent would pass it to the container).
 */
describe('broker: bindings make real database users', () => {
  let instance: PostgresInstance;
  let h: Harness;
  let postgres: LocalPostgres;
  const instanceId = uniqueId('db');
  const bindingPath = (id: string) => bindingPathOf(instanceId, id);
  const unbindPath = (id: string) => unbindPathOf(instanceId, id);

  before(async () => {
    instance = await startPostgresInstance(instanceId, { bindTimeoutMs: 5000 });
    ({ h, postgres } = instance);
    assert.equal((await h.readInstance(instanceId))?.routerPort, postgres.port);
  });
  after(async () => {
    await instance?.close();
  });

  let first: Credentials;

  it('binds: 201 with credentials of a new user that can connect and create tables', async () => {
    const res = await h.call('PUT', bindingPath('app-one'), {
      body: bindBody({ context: { platform: 'cloudfoundry', binding_name: 'orders-app' } }),
    });
    assert.equal(res.status, 201, res.text);
    first = (res.body as { credentials: Credentials }).credentials;
    assert.equal(first.host, '127.0.0.1');
    assert.equal(first.port, postgres.port);
    assert.equal(first.database, 'sf');
    assert.match(first.username, /^u_[a-z0-9]{16}$/);
    assert.match(first.password, /^[A-Za-z0-9]{32}$/);
    assert.equal(first.uri, `postgres://${first.username}:${first.password}@127.0.0.1:${postgres.port}/sf`);
    assert.equal(
      first.jdbcUrl,
      `jdbc:postgresql://127.0.0.1:${postgres.port}/sf?user=${first.username}&password=${first.password}`,
    );

    // Logged in as its own user, working as the app role: what it creates is the app's.
    const who = await asUser(first.uri, 'SELECT session_user AS login, current_user AS role');
    assert.deepEqual(who.rows[0], { login: first.username, role: 'sf_app' });
    await asUser(first.uri, 'CREATE TABLE orders (id int primary key); INSERT INTO orders VALUES (1)');
    // The clear password never reached the server: it stores the broker's SCRAM verifier.
    const stored = await postgres.admin('SELECT rolpassword FROM pg_catalog.pg_authid WHERE rolname = $1', [
      first.username,
    ]);
    assert.match(stored.rows[0]?.rolpassword, /^SCRAM-SHA-256\$4096:/);

    const record = (await readSealed(h.client, secretBox, bindingCodec, h.keys.binding(instanceId, 'app-one')))?.value;
    assert.ok(record, 'the binding is stored');
    assert.equal(record.name, 'orders-app');
    assert.equal(record.username, first.username);
  });

  it('answers a repeated identical bind with the same credentials, a different one with 409', async () => {
    const repeat = await h.call('PUT', bindingPath('app-one'), {
      body: bindBody({ context: { platform: 'cloudfoundry', binding_name: 'orders-app' } }),
    });
    assert.equal(repeat.status, 200);
    assert.deepEqual((repeat.body as { credentials: Credentials }).credentials, first);

    const before = await h.dump();
    const different = await h.call('PUT', bindingPath('app-one'), {
      body: bindBody({ context: { platform: 'cloudfoundry', binding_name: 'another-name' } }),
    });
    assert.equal(different.status, 409);
    assertOsbError(different.body, 'Conflict');
    assert.equal(await h.dump(), before);

    const fetched = await h.call('GET', bindingPath('app-one'));
    assert.equal(fetched.status, 200);
    assert.deepEqual((fetched.body as { credentials: Credentials }).credentials, first);
  });

  it('lets concurrent binds of one id create exactly one user', async () => {
    const results = await Promise.all(
      [1, 2, 3].map(() => h.call('PUT', bindingPath('app-race'), { body: bindBody() })),
    );
    assert.deepEqual(results.map((r) => r.status).sort(), [200, 200, 201]);
    const usernames = new Set(results.map((r) => (r.body as { credentials: Credentials }).credentials.username));
    assert.equal(usernames.size, 1, 'every answer carries the winner credentials');
    const roles = await postgres.admin("SELECT rolname FROM pg_roles WHERE rolname LIKE 'u\\_%' ORDER BY 1");
    assert.deepEqual(roles.rows.map((r) => r.rolname).sort(), [first.username, [...usernames][0]].sort());
  });

  it('shows bindings in the operator API without passwords', async () => {
    const res = await h.call('GET', `/sf/v1/instances/${instanceId}`);
    const detail = res.body as InstanceDetail;
    assert.deepEqual(detail.bindings.map((b) => b.name).sort(), ['app-race', 'orders-app']);
    assert.ok(!res.text.includes(first.password));
  });

  let second: Credentials;

  it('gives a second key the data the first one made', async () => {
    const res = await h.call('PUT', bindingPath('app-two'), { body: bindBody() });
    assert.equal(res.status, 201, res.text);
    second = (res.body as { credentials: Credentials }).credentials;
    assert.notEqual(second.username, first.username);
    await asUser(second.uri, 'INSERT INTO orders VALUES (2)');
    const rows = await asUser(second.uri, 'SELECT id FROM orders ORDER BY id');
    assert.deepEqual(
      rows.rows.map((r) => r.id),
      [1, 2],
    );
    await asUser(second.uri, 'CREATE TABLE invoices (order_id int); INSERT INTO invoices VALUES (2)');
    assert.equal((await asUser(first.uri, 'SELECT count(*)::int AS n FROM invoices')).rows[0]?.n, 1);
  });

  it('unbinds: the user is gone, its tables stay with sf_app for the other keys, a repeat is 410', async () => {
    const res = await h.call('DELETE', unbindPath('app-one'));
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.body, {});
    const role = await postgres.admin('SELECT 1 FROM pg_roles WHERE rolname = $1', [first.username]);
    assert.equal(role.rowCount, 0);
    await assert.rejects(
      asUser(first.uri, 'SELECT 1'),
      /password authentication failed|does not exist|no pg_hba\.conf entry/,
    );
    const owner = await postgres.admin("SELECT tableowner FROM pg_tables WHERE tablename = 'orders'");
    assert.equal(owner.rows[0]?.tableowner, 'sf_app');
    const left = await asUser(second.uri, 'SELECT count(*)::int AS n FROM orders');
    assert.equal(left.rows[0]?.n, 2, 'the remaining key still reads and writes the data');
    await asUser(second.uri, 'INSERT INTO orders VALUES (3)');
    assert.equal(await h.client.get(h.keys.binding(instanceId, 'app-one')).string(), null);

    const again = await h.call('DELETE', unbindPath('app-one'));
    assert.equal(again.status, 410);
    assert.equal((await h.call('GET', bindingPath('app-one'))).status, 404);
  });

  it('reports an unreachable database as a 500 with a clear description and stores nothing', async () => {
    await postgres.stop();
    const before = await h.dump();
    const res = await h.call('PUT', bindingPath('app-late'), { body: bindBody() });
    assert.equal(res.status, 500);
    assertOsbError(res.body, 'BindingFailed');
    assert.match((res.body as { description: string }).description, /ECONNREFUSED|connect/);
    assert.equal(await h.dump(), before);
  });
});
