import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { waitFor } from '@service-foundry/core';
import { startCluster, type TestCluster } from '@service-foundry/test-support/cluster';
import { containersOf, docker } from '@service-foundry/test-support/docker';
import { type RedisCredentials, redisCli } from '@service-foundry/test-support/redis-cli';
import { longestGapMs, lostWrites, Writer } from '@service-foundry/test-support/writer';

interface Detail {
  id: string;
  plan: string;
  replicas: { desired: number; placed: number; running: number };
  io: { durability: string; localIo: string };
  primary: { node: string; ordinal: number; epoch: number } | null;
  replicaDetails: Array<{ ordinal: number; node: string | null; state: string; role: string | null }>;
}

/**
 * `sf update-service NAME -p PLAN` (an OSB plan change) on real Postgres and Redis:
 * `small` → `ha-small` adds two replicas cloned from the primary on other nodes, then puts
 * the plan's durability in force; `ha-small` → `small` relaxes durability, then removes
 * the standbys. `small` ↔ `medium` changes CPU and memory of the running containers in
 * place (`docker update`) and the disk reserved on their nodes. The primary serves throughout.
 */
describe('plan changes (replicas and size) and key rotation', () => {
  let cluster: TestCluster;
  const detail = async (name: string): Promise<Detail> => {
    const result = await cluster.sf('service', name, '--json');
    assert.equal(result.code, 0, result.stderr);
    return JSON.parse(result.stdout) as Detail;
  };
  /** Creates an instance and a service key for it; the key's credentials. */
  const createWithKey = async (service: string, plan: string, name: string, keyName: string) => {
    const created = await cluster.sf('create-service', service, plan, name);
    assert.equal(created.code, 0, created.stdout + created.stderr);
    const key = await cluster.sf('create-service-key', name, keyName, '--json');
    assert.equal(key.code, 0, key.stderr);
    return JSON.parse(key.stdout) as RedisCredentials & { uri: string };
  };
  const update = async (name: string, plan: string) => {
    const result = await cluster.sf('update-service', name, '-p', plan);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    return result.stdout;
  };

  before(async () => {
    cluster = await startCluster(3, { oneSchedulerOneBroker: true });
  });
  /** What the nodes' ledgers hold for an instance's replicas (`sf nodes`). */
  const reserved = async (instanceId: string) => {
    const result = await cluster.sf('nodes', '--json');
    assert.equal(result.code, 0, result.stderr);
    const nodes = JSON.parse(result.stdout) as Array<{ replicas: Array<{ instanceId: string; resources: object }> }>;
    return nodes.flatMap((n) => n.replicas.filter((r) => r.instanceId === instanceId).map((r) => r.resources));
  };
  /** The limits, process and start time of each of an instance's containers, as Docker has them. */
  const containers = async (instanceId: string) => {
    const found = await containersOf(instanceId);
    return Promise.all(
      found.map(async (c) => {
        const info = await docker.getContainer(c.Id).inspect();
        return {
          id: c.Id,
          memoryMb: (info.HostConfig.Memory ?? 0) / 2 ** 20,
          cpuMillis: (info.HostConfig.NanoCpus ?? 0) / 1e6,
          startedAt: info.State.StartedAt,
        };
      }),
    );
  };
  after(async () => {
    await cluster?.destroy();
  });

  it('Postgres: grows to three replicas and shrinks back to one under a writer, no acknowledged write lost', async () => {
    const { uri } = await createWithKey('postgres', 'small', 'pg', 'writer');
    await Writer.prepare(uri);
    const writer = new Writer(uri);
    writer.start();
    try {
      await waitFor(() => writer.acked.length >= 50, { description: '50 acknowledged writes', timeoutMs: 90_000 });
      const upAt = Date.now();
      const up = await update('pg', 'ha-small');
      assert.match(up, /plan small → ha-small/);
      const grown = await detail('pg');
      assert.equal(grown.plan, 'ha-small');
      assert.equal(grown.replicas.desired, 3);
      assert.deepEqual(grown.io, { durability: 'remote-fsync', localIo: 'fsync' });
      const running = grown.replicaDetails.filter((r) => r.state === 'running');
      assert.equal(running.length, 3, JSON.stringify(grown.replicaDetails));
      assert.equal(new Set(running.map((r) => r.node)).size, 3, 'each replica on its own node');
      assert.equal(grown.primary?.ordinal, 0, 'the primary stayed where it was');
      const upDoneAt = Date.now();
      await waitFor(() => writer.firstAckAfter(upDoneAt), { description: 'writes after growing', timeoutMs: 60_000 });
      console.log(
        `# postgres small → ha-small: ${((upDoneAt - upAt) / 1000).toFixed(1)} s, longest write gap ${longestGapMs(writer.acked, upAt)} ms`,
      );

      const downAt = Date.now();
      const down = await update('pg', 'small');
      assert.match(down, /plan ha-small → small/);
      const shrunk = await detail('pg');
      assert.equal(shrunk.plan, 'small');
      assert.equal(shrunk.replicas.desired, 1);
      assert.deepEqual(shrunk.io, { durability: 'async', localIo: 'fsync' });
      assert.deepEqual(
        shrunk.replicaDetails.map((r) => [r.ordinal, r.state]),
        [[0, 'running']],
        'the standbys are gone, the primary stays',
      );
      const downDoneAt = Date.now();
      await waitFor(() => writer.firstAckAfter(downDoneAt), {
        description: 'writes after shrinking',
        timeoutMs: 60_000,
      });
      console.log(
        `# postgres ha-small → small: ${((downDoneAt - downAt) / 1000).toFixed(1)} s, longest write gap ${longestGapMs(writer.acked, downAt)} ms`,
      );
    } finally {
      await writer.stop();
    }
    const lost = await lostWrites(uri, writer.acked);
    assert.deepEqual(lost, [], `acknowledged writes lost: ${lost.length} of ${writer.acked.length}`);
    const log = (await cluster.sf('events', '--json', '--limit', '300')).stdout;
    assert.match(log, /instance-update-progress/);
    assert.match(log, /applying durability remote-fsync/);
    assert.match(log, /removing replica\(s\) 1, 2/);
  });

  it('Postgres: small → medium grows CPU, memory and disk in place under a writer (same server process, none lost); back is refused', async () => {
    const { uri } = await createWithKey('postgres', 'small', 'sized', 'writer');
    const id = (await detail('sized')).id;
    const [before] = await containers(id);
    assert.deepEqual([before?.cpuMillis, before?.memoryMb], [500, 512]);
    await Writer.prepare(uri);
    const writer = new Writer(uri);
    writer.start();
    try {
      await waitFor(() => writer.acked.length >= 20, { description: '20 acknowledged writes', timeoutMs: 60_000 });
      const upAt = Date.now();
      assert.match(await update('sized', 'medium'), /plan small → medium/);
      const upDoneAt = Date.now();
      const [grown] = await containers(id);
      assert.deepEqual([grown?.cpuMillis, grown?.memoryMb], [1000, 1024], 'Docker runs it with the new limits');
      assert.equal(grown?.id, before?.id, 'the same container');
      assert.equal(grown?.startedAt, before?.startedAt, 'never restarted');
      assert.equal((await detail('sized')).plan, 'medium');
      assert.deepEqual(await reserved(id), [{ cpuMillis: 1000, memoryMb: 1024, diskMb: 2048 }], 'in the node’s ledger');
      await waitFor(() => writer.firstAckAfter(upDoneAt), { description: 'writes after growing', timeoutMs: 30_000 });
      console.log(
        `# postgres small → medium in place: ${((upDoneAt - upAt) / 1000).toFixed(1)} s, longest write gap ${longestGapMs(writer.acked, upAt)} ms`,
      );
    } finally {
      await writer.stop();
    }
    const lost = await lostWrites(uri, writer.acked);
    assert.deepEqual(lost, [], `acknowledged writes lost: ${lost.length} of ${writer.acked.length}`);
    const log = (await cluster.sf('events', '--json', '--limit', '300')).stdout;
    assert.match(log, /resizing replica\(s\) 0 in place to 1000m CPU, 1024 MB memory, 2048 MB disk/);

    const back = await cluster.sf('update-service', 'sized', '-p', 'small');
    assert.equal(back.code, 1);
    assert.match(back.stderr, /disk would shrink from 2048 MB to 1024 MB per replica/);
    assert.equal((await detail('sized')).plan, 'medium', 'nothing changed');
  });

  it('Redis: small → medium → small resizes in place both ways, data kept, the node’s room given back', async () => {
    const credentials = await createWithKey('redis', 'small', 'sized-rd', 'k');
    assert.equal(await redisCli(credentials, 'SET', 'sized', 'kept'), 'OK');
    const id = (await detail('sized-rd')).id;
    const [before] = await containers(id);
    assert.deepEqual([before?.cpuMillis, before?.memoryMb], [250, 256]);

    await update('sized-rd', 'medium');
    const [grown] = await containers(id);
    assert.deepEqual([grown?.cpuMillis, grown?.memoryMb], [500, 512]);
    assert.deepEqual(await reserved(id), [{ cpuMillis: 500, memoryMb: 512, diskMb: 512 }]);

    await update('sized-rd', 'small');
    const [shrunk] = await containers(id);
    assert.deepEqual([shrunk?.cpuMillis, shrunk?.memoryMb], [250, 256], 'memory lowered: Redis uses far less');
    assert.equal(shrunk?.startedAt, before?.startedAt, 'never restarted');
    assert.deepEqual(await reserved(id), [{ cpuMillis: 250, memoryMb: 256, diskMb: 512 }], 'the room given back');
    assert.equal(await redisCli(credentials, 'GET', 'sized'), 'kept');
  });

  it('Redis: the added replicas carry the data and the bound users, so a switchover to one keeps them', async () => {
    const credentials = await createWithKey('redis', 'small', 'rd', 'k1');
    assert.equal(await redisCli(credentials, 'SET', 'before-change', 'kept'), 'OK');
    await update('rd', 'ha-small');
    const grown = await detail('rd');
    assert.equal(grown.replicaDetails.filter((r) => r.state === 'running').length, 3);
    assert.equal(grown.io.durability, 'received');
    assert.equal(await redisCli(credentials, 'SET', 'after-change', 'kept'), 'OK');

    const switched = await cluster.sf('switchover', 'rd', '--to', '1');
    assert.equal(switched.code, 0, switched.stdout + switched.stderr);
    assert.equal((await detail('rd')).primary?.ordinal, 1);
    // The same binding, on the promoted replica: the user and both keys were copied to it.
    await waitFor(async () => (await redisCli(credentials, 'GET', 'before-change').catch(() => '')) === 'kept', {
      description: 'the binding reads through the new primary',
      timeoutMs: 60_000,
    });
    assert.equal(await redisCli(credentials, 'GET', 'after-change'), 'kept');

    // Rotating the key (OSB binding rotation): a new user, valid on every replica beside the old one.
    const rotated = await cluster.sf('rotate-service-key', 'rd', 'k1', 'k2', '--json');
    assert.equal(rotated.code, 0, rotated.stdout + rotated.stderr);
    const successor = JSON.parse(rotated.stdout) as RedisCredentials;
    assert.notEqual(successor.username, credentials.username);
    assert.equal(await redisCli(successor, 'GET', 'after-change'), 'kept');
    assert.equal(await redisCli(credentials, 'GET', 'after-change'), 'kept', 'the old key still works');
    const deleted = await cluster.sf('delete-service-key', 'rd', 'k1');
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.match(await redisCli(credentials, 'GET', 'after-change'), /WRONGPASS|NOAUTH|invalid username-password/);
    assert.equal(await redisCli(successor, 'GET', 'after-change'), 'kept');

    // Back to one replica is refused while the primary is replica 1, which small does not keep.
    const refused = await cluster.sf('update-service', 'rd', '-p', 'small');
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /primary is replica 1.*sf switchover rd --to 0/);
    assert.equal((await detail('rd')).replicas.desired, 3, 'nothing changed');
  });
});
