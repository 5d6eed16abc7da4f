import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { uniqueId } from '@service-foundry/test-support';
import { psql } from '@service-foundry/test-support/psql';
import {
  bindBody,
  bindingPath,
  type PostgresInstance,
  startPostgresInstance,
  unbindPath,
} from './postgres-instance.js';

interface Credentials {
  host: string;
  hosts: Array<{ host: string; port: number }>;
  port: number;
  username: string;
  password: string;
  uri: string;
  jdbcUrl: string;
}

/**
 * Several routers: the broker is told two addresses, and the first has nothing behind it
 * (a router that is down). The real PostgreSQL listens on 127.0.0.1 only, so 127.0.0.3
 * refuses, as a dead router's address does.
 */
describe('broker: bindings name every router, and a dead one is passed over', () => {
  let instance: PostgresInstance;
  const instanceId = uniqueId('db');
  const deadRouter = '127.0.0.3';

  before(async () => {
    instance = await startPostgresInstance(instanceId, { bindTimeoutMs: 5000, routerHosts: [deadRouter, '127.0.0.1'] });
  });
  after(async () => {
    await instance?.close();
  });

  let credentials: Credentials;

  it('binds through the router that answers; the credentials list both, asking libpq and pgJDBC for the primary', async () => {
    const res = await instance.h.call('PUT', bindingPath(instanceId, 'multi'), { body: bindBody() });
    assert.equal(res.status, 201, res.text);
    credentials = (res.body as { credentials: Credentials }).credentials;
    const port = instance.postgres.port;
    const { username, password } = credentials;
    assert.equal(credentials.host, deadRouter);
    assert.deepEqual(credentials.hosts, [
      { host: deadRouter, port },
      { host: '127.0.0.1', port },
    ]);
    assert.equal(
      credentials.uri,
      `postgres://${username}:${password}@${deadRouter}:${port},127.0.0.1:${port}/sf?target_session_attrs=read-write`,
    );
    assert.equal(
      credentials.jdbcUrl,
      `jdbc:postgresql://${deadRouter}:${port},127.0.0.1:${port}/sf?user=${username}&password=${password}&targetServerType=primary`,
    );
    const endpoints = (res.body as { endpoints: Array<{ host: string }> }).endpoints;
    assert.deepEqual(
      endpoints.map((e) => e.host),
      [deadRouter, '127.0.0.1'],
    );
  });

  it('real psql with that URI connects through the live router, as the binding user', async () => {
    const result = await psql(credentials.uri, 'SELECT session_user');
    assert.ok(result.ok, result.err);
    assert.equal(result.out, credentials.username);
  });

  it('unbinds through the live router too: the user is gone', async () => {
    const res = await instance.h.call('DELETE', unbindPath(instanceId, 'multi'));
    assert.equal(res.status, 200, res.text);
    const rows = await instance.postgres.admin('SELECT 1 FROM pg_roles WHERE rolname = $1', [credentials.username]);
    assert.equal(rows.rowCount, 0);
  });
});
