import assert from 'node:assert/strict';
import { cp, readFile, writeFile } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  type AssignmentRecord,
  Catalog,
  CatalogError,
  defaultCatalogDir,
  type Etcd3,
  waitFor,
} from '@service-foundry/core';
import { startTestEtcd, type TestEtcd, tempDirFor, uniqueId, uniqueKeyspace } from '@service-foundry/test-support';
import { removeClusterResources } from '@service-foundry/test-support/docker';
import { makeTestPki, type TestPki } from '@service-foundry/test-support/test-pki';
import { type RunningAgent, replicaResourceName } from '../src/index.js';
import { postgresVerdict, probeWire } from '../src/wire-probe.js';
import { putSecret, startTestAgent } from './helpers.js';
import { postgresSecret, runtime, shellIn, statusWhere } from './replication-helpers.js';

/** A Postgres backend message: type byte, Int32 length (itself included), body. */
function message(type: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

/** An ErrorResponse with these fields (`S`everity, `C`ode, `M`essage). */
function errorMessage(fields: Record<string, string>): Buffer {
  const parts = Object.entries(fields).map(([k, v]) => Buffer.from(`${k}${v}\0`, 'utf8'));
  return message('E', Buffer.concat([...parts, Buffer.from([0])]));
}

describe('the Postgres wire check reads a first answer as pg_isready does', () => {
  test('an authentication request or a negotiation means ready', () => {
    const sasl = message('R', Buffer.concat([Buffer.from([0, 0, 0, 10]), Buffer.from('SCRAM-SHA-256\0\0')]));
    assert.equal(postgresVerdict(sasl)?.ready, true);
    assert.equal(postgresVerdict(message('v', Buffer.from([0, 0, 0, 0, 0, 0, 0, 0])))?.ready, true);
  });

  test('57P03 means not ready; any other error means the server accepts connections', () => {
    const starting = postgresVerdict(errorMessage({ S: 'FATAL', C: '57P03', M: 'the database system is starting up' }));
    assert.deepEqual(starting, { ready: false, detail: 'rejecting connections: the database system is starting up' });
    const noEntry = postgresVerdict(errorMessage({ S: 'FATAL', C: '28000', M: 'no pg_hba.conf entry' }));
    assert.equal(noEntry?.ready, true);
  });

  test('an incomplete answer waits for more; a foreign or malformed one is not ready', () => {
    const whole = errorMessage({ S: 'FATAL', C: '57P03', M: 'the database system is shutting down' });
    assert.equal(postgresVerdict(whole.subarray(0, 4)), undefined);
    assert.equal(postgresVerdict(whole.subarray(0, whole.length - 1)), undefined);
    assert.equal(postgresVerdict(Buffer.from('HTTP/1.1 400 Bad Request\r\n'))?.ready, false);
    const huge = Buffer.alloc(5);
    huge.write('E', 0, 'latin1');
    huge.writeInt32BE(1 << 30, 1);
    assert.deepEqual(postgresVerdict(huge), { ready: false, detail: 'malformed error message' });
  });

  test('a closed port, or one that never answers, is not ready within the attempt bound', async () => {
    // A port that accepts but stays silent (a service still starting behind a proxy).
    const accepted = new Set<Socket>();
    const silent = createServer((socket) => accepted.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as { port: number }).port;
    const target = { host: '127.0.0.1', port, user: 'postgres', database: 'sf' };
    const startedAt = Date.now();
    assert.deepEqual(await probeWire('postgres', target, 300), { ready: false, detail: 'no answer within 300 ms' });
    assert.ok(Date.now() - startedAt < 2000);
    const closed = new Promise<void>((resolve) => silent.close(() => resolve()));
    for (const socket of accepted) socket.destroy();
    await closed;
    const refused = await probeWire('postgres', target, 1000);
    assert.deepEqual(refused, { ready: false, detail: 'ECONNREFUSED' });
  });
});

test('a catalog whose wire check names an unknown protocol, or a user or database unfit for a startup message, is refused at load', async (t) => {
  const variant = async (wire: unknown): Promise<unknown> => {
    const dir = await tempDirFor(t, 'sf-catalog-wire');
    await cp(defaultCatalogDir(), dir, { recursive: true });
    const file = join(dir, 'postgres', 'service.json');
    const entry = JSON.parse(await readFile(file, 'utf8')) as { runtime: { readiness: { wire?: unknown } } };
    entry.runtime.readiness.wire = wire;
    await writeFile(file, JSON.stringify(entry));
    return Catalog.load(dir);
  };
  const good = { protocol: 'postgres', user: 'postgres', database: 'sf' };
  assert.ok(await variant(good));
  for (const bad of [
    { ...good, protocol: 'mysql' },
    { ...good, user: 'postgres\u0000database\u0000template1' },
    { ...good, database: '' },
    { ...good, password: 'x' },
    { protocol: 'postgres', user: 'postgres' },
  ]) {
    await assert.rejects(variant(bad), CatalogError, JSON.stringify(bad));
  }
});

describe('the wire check against the catalog Postgres run by an agent', () => {
  let etcd: TestEtcd;
  let client: Etcd3;
  let pki: TestPki;

  before(async () => {
    etcd = await startTestEtcd();
    client = etcd.client;
    pki = await makeTestPki([{ name: 'pg-node', address: '127.0.0.1' }]);
    const entry = (await Catalog.load()).byServiceName('postgres');
    assert.ok(entry?.runtime.readiness.wire, 'the postgres catalog entry has a wire readiness check');
    assert.ok(await runtime.hasImage(entry.runtime.image), `image ${entry.runtime.image} is missing`);
  });
  after(async () => {
    await etcd.stop();
    await pki?.remove();
  });

  test('ready once running, as pg_isready says; not ready while shutting down, as pg_isready says', async (t) => {
    const keys = uniqueKeyspace();
    const clusterId = uniqueId('cl');
    const instanceId = uniqueId('pg');
    const node = uniqueId('pgw');
    let agent: RunningAgent | undefined;
    t.after(async () => {
      await agent?.stop();
      await removeClusterResources(clusterId);
    });
    agent = await startTestAgent(etcd.endpoint, keys, {
      node,
      reconcileIntervalMs: 500,
      clusterId,
      serviceTls: pki.serviceTls('pg-node'),
    });
    await putSecret(client, keys, instanceId, postgresSecret);
    const record: AssignmentRecord = {
      instanceId,
      ordinal: 0,
      serviceName: 'postgres',
      planName: 'small',
      resources: { cpuMillis: 500, memoryMb: 512, diskMb: 1024 },
      desired: 'running',
      role: 'primary',
      epoch: 0,
    };
    await client
      .put(keys.assignment(node, instanceId, 0))
      .value(JSON.stringify(record))
      .exec();
    const running = await statusWhere(client, keys, instanceId, 0, 'running', (s) => s.state === 'running', 90_000);
    assert.ok(running.host && running.port, 'a running status names host and port');
    const target = { host: running.host, port: running.port, user: 'postgres', database: 'sf' };
    const container = replicaResourceName(node, { instanceId, ordinal: 0 });
    const pgIsReady = async () =>
      (await runtime.exec(container, ['pg_isready', '-q', '-h', '127.0.0.1', '-U', 'postgres', '-d', 'sf'], 10_000))
        .exitCode;

    const ready = await probeWire('postgres', target, 1000);
    assert.equal(ready.ready, true, ready.detail);
    assert.equal(await pgIsReady(), 0);

    // A smart shutdown waits for open sessions and refuses new ones with 57P03. The session:
    // a psql reading its stdin, open until the test closes that stream.
    const held = await runtime.attachExec(container, [
      'psql',
      '-X',
      '-q',
      '-d',
      'dbname=sf user=postgres application_name=sf-held-session',
    ]);
    t.after(() => held.close());
    await waitFor(
      async () =>
        (
          await shellIn(
            container,
            `psql -X -A -t -U postgres -d sf -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'sf-held-session'"`,
          )
        ).trim() === '1',
      { description: 'the open session', timeoutMs: 10_000, intervalMs: 50 },
    );
    await shellIn(container, 'kill -TERM 1');
    const refused = await waitFor(
      async () => {
        const probe = await probeWire('postgres', target, 1000);
        return probe.ready ? undefined : probe;
      },
      { description: 'the wire check to see the shutdown', timeoutMs: 10_000, intervalMs: 20 },
    );
    assert.match(refused.detail, /^rejecting connections: the database system is shutting down/);
    assert.equal(await pgIsReady(), 1, 'pg_isready: rejecting connections');
  });
});
