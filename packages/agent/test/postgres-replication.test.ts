import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  type AssignmentRecord,
  Catalog,
  type Etcd3,
  type PrimaryRecord,
  type ReplicaStatus,
  waitFor,
} from '@service-foundry/core';
import { startTestEtcd, type TestEtcd, uniqueId, uniqueKeyspace } from '@service-foundry/test-support';
import { containerState, removeClusterResources } from '@service-foundry/test-support/docker';
import { makeTestPki, type TestPki } from '@service-foundry/test-support/test-pki';
import { type RunningAgent, replicaResourceName } from '../src/index.js';
import { putSecret, startTestAgent } from './helpers.js';
import { postgresSecret, runtime, shellIn, statusWhere } from './replication-helpers.js';

/**
 * The agent's rules with the real catalog entry (service-foundry/postgres, helper `sf-pg`):
 * two nodes sharing the Docker Engine, a bootstrap primary, a streaming clone, io settings,
 * a switchover (promotion under a new epoch) and the old primary rejoining as a fresh clone.
 */
describe('replicated Postgres driven by two agents', () => {
  let etcd: TestEtcd;
  let client: Etcd3;
  let image: string;
  // The image serves TLS only: each agent gives its containers the node's service certificate.
  let pki: TestPki;

  before(async () => {
    etcd = await startTestEtcd();
    pki = await makeTestPki([{ name: 'pg-node', address: '127.0.0.1' }]);
    client = etcd.client;
    const entry = (await Catalog.load()).byServiceName('postgres');
    assert.ok(entry?.replication, 'the postgres catalog entry has a replication recipe');
    image = entry.runtime.image;
    assert.ok(await runtime.hasImage(image), `image ${image} is missing: run \`sf images build\``);
  });
  after(async () => {
    await etcd.stop();
    await pki?.remove();
  });

  test('bootstrap, clone, io, promotion under a new epoch and the old primary rebuilt from the new one', async (t) => {
    const keys = uniqueKeyspace();
    const clusterId = uniqueId('cl');
    const instanceId = uniqueId('pg');
    const nodes = [uniqueId('pga'), uniqueId('pgb')] as const;
    const agents: RunningAgent[] = [];
    t.after(async () => {
      for (const agent of agents) await agent.stop();
      await removeClusterResources(clusterId);
    });
    for (const node of nodes) {
      const options = {
        node,
        reconcileIntervalMs: 500,
        positionIntervalMs: 200,
        clusterId,
        serviceTls: pki.serviceTls('pg-node'),
      };
      agents.push(await startTestAgent(etcd.endpoint, keys, options));
    }
    await putSecret(client, keys, instanceId, postgresSecret);
    const assign = async (ordinal: 0 | 1, fields: Partial<AssignmentRecord>) => {
      const record: AssignmentRecord = {
        instanceId,
        ordinal,
        serviceName: 'postgres',
        planName: 'small',
        resources: { cpuMillis: 500, memoryMb: 512, diskMb: 1024 },
        desired: 'running',
        ...fields,
      };
      await client
        .put(keys.assignment(nodes[ordinal], instanceId, ordinal))
        .value(JSON.stringify(record))
        .exec();
    };
    const elect = async (ordinal: 0 | 1) => {
      const record: PrimaryRecord = {
        instanceId,
        ordinal,
        node: nodes[ordinal],
        host: '127.0.0.1',
        port: 5432,
        electedAt: new Date().toISOString(),
      };
      return Number((await client.put(keys.primary(instanceId)).value(JSON.stringify(record)).exec()).header.revision);
    };
    const status = (ordinal: 0 | 1, what: string, accept: (s: ReplicaStatus) => boolean) =>
      statusWhere(client, keys, instanceId, ordinal, what, accept, 60_000);
    const container = (ordinal: 0 | 1) => replicaResourceName(nodes[ordinal], { instanceId, ordinal });
    const sql = async (ordinal: 0 | 1, statement: string, timeoutMs?: number) =>
      (
        await shellIn(
          container(ordinal),
          `psql -X -A -t -q -v ON_ERROR_STOP=1 -U postgres -d sf -c "${statement}"`,
          timeoutMs,
        )
      ).trim();

    // Bootstrap primary on node A, elected by hand (as the controller does), then a replica on node B.
    await assign(0, { role: 'primary', epoch: 0 });
    const bootstrap = await status(0, 'bootstrap primary', (s) => s.state === 'running' && s.peer !== undefined);
    assert.equal(bootstrap.role, 'primary');
    assert.ok(bootstrap.peer);
    const primaryPeer = bootstrap.peer;
    const epoch = await elect(0);
    await assign(0, { role: 'primary', epoch });
    await status(0, 'primary at its epoch', (s) => s.epoch === epoch);
    await sql(0, 'CREATE TABLE acked (n int PRIMARY KEY); INSERT INTO acked SELECT generate_series(1, 100)');

    await assign(1, { role: 'replica', epoch, upstream: primaryPeer });
    const replica = await status(1, 'replica streaming', (s) => s.state === 'running' && s.position !== undefined);
    assert.equal(replica.role, 'replica');
    assert.equal(await sql(1, 'SELECT count(*) FROM acked'), '100', 'the clone has the data');
    assert.equal(await sql(1, 'SELECT pg_is_in_recovery()'), 't');

    // io on both: the primary waits for a standby's flush.
    const io = { durability: 'remote-fsync', localIo: 'fsync' } as const;
    await assign(0, { role: 'primary', epoch, io });
    await assign(1, { role: 'replica', epoch, upstream: primaryPeer, io });
    await status(0, 'io on the primary', (s) => s.io?.durability === 'remote-fsync');
    await status(1, 'io on the replica', (s) => s.io?.durability === 'remote-fsync');
    assert.equal(await sql(0, 'SHOW synchronous_standby_names'), 'ANY 1 (*)');
    await sql(0, 'INSERT INTO acked SELECT generate_series(101, 200)');
    const primaryPosition = BigInt(
      (await status(0, 'primary position', (s) => s.position !== undefined)).position ?? 0,
    );
    await status(1, 'replica caught up', (s) => BigInt(s.position ?? 0) >= primaryPosition);

    // Switchover: the key moves to B at a new epoch; B is promoted, A is demoted with a new generation.
    const next = await elect(1);
    await assign(1, { role: 'primary', epoch: next, io });
    const promoted = await status(1, 'promoted', (s) => s.role === 'primary' && s.epoch === next);
    assert.equal(promoted.message, 'ready');
    assert.ok(promoted.peer);
    const promotedPeer = promoted.peer;
    assert.equal(await sql(1, 'SELECT pg_is_in_recovery()'), 'f');
    // remote-fsync: with no standby yet, the new primary holds this commit until A streams from it.
    const write = sql(1, 'INSERT INTO acked SELECT generate_series(201, 300)', 60_000);
    write.catch(() => undefined);

    const oldContainer = (await containerState(container(0)))?.Id;
    await assign(0, { role: 'replica', epoch: next, upstream: promotedPeer, io, generation: 1 });
    const rejoined = await status(
      0,
      'old primary rebuilt as a replica of the new one',
      (s) => s.state === 'running' && s.role === 'replica' && s.generation === 1 && s.containerId !== oldContainer,
    );
    assert.equal(rejoined.epoch, next);
    const rejoinedAt = Date.now();
    await write;
    t.diagnostic(`the held commit was acknowledged ${Date.now() - rejoinedAt} ms after the standby reported running`);
    // Acknowledged once flushed on the standby; visible there once replayed.
    const ackedAt = Date.now();
    // The clone started from a checkpoint whose snapshot lists the held transaction as
    // running; the standby learns it ended from the next running-xacts record (the
    // bgwriter logs one every 15 s, a checkpoint at once).
    await sql(1, 'CHECKPOINT');
    await waitFor(async () => (await sql(0, 'SELECT count(*) FROM acked')) === '300', {
      description: 'the acknowledged write replayed on the rejoined standby',
    });
    t.diagnostic(`replayed on the standby ${Date.now() - ackedAt} ms after the acknowledgement`);
    assert.equal(await sql(0, 'SELECT pg_is_in_recovery()'), 't');
    const mounts = (await containerState(container(0)))?.Mounts.map((m) => m.Name);
    assert.deepEqual(mounts, [`${container(0)}-g1`]);
    assert.ok(await runtime.volumeExists(container(0)), 'the old primary volume is kept');
  });
});
