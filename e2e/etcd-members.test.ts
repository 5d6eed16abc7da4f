import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { waitFor } from '@service-foundry/core';
import { startCluster, type TestCluster } from '@service-foundry/test-support/cluster';
import { longestGapMs, lostWrites, Writer } from '@service-foundry/test-support/writer';

interface ComponentRow {
  name: string;
  running: boolean;
  restarts: number;
}

interface Supervision {
  supervisorPid: number;
  pid: number | null;
  restarts: number;
}

/**
 * `sf up --etcd-members 3`: three etcd members on this machine, every component given all
 * three. One member killed and kept down: a majority still serves, so nothing changes for
 * clients (no process restarts, the primary keeps its epoch, writes go on, new work is done).
 */
describe('etcd with three members: losing one changes nothing for clients', () => {
  let cluster: TestCluster;
  let uri = '';
  const status = async () => {
    const result = await cluster.sf('status', '--json');
    return {
      code: result.code,
      ...(JSON.parse(result.stdout) as {
        components: ComponentRow[];
        etcd: Array<{ name: string; healthy: boolean; leader: boolean }>;
      }),
    };
  };
  const components = async (): Promise<ComponentRow[]> => (await status()).components;
  const supervision = async (name: string): Promise<Supervision> =>
    JSON.parse(await readFile(join(cluster.home, 'run', `${name}.supervision.json`), 'utf8')) as Supervision;
  const primaryOf = async (name: string) => {
    const result = await cluster.sf('service', name, '--json');
    assert.equal(result.code, 0, result.stderr);
    return (JSON.parse(result.stdout) as { primary: { node: string; epoch: number } | null }).primary;
  };

  before(async () => {
    cluster = await startCluster(2, { sharedEngine: true, etcdMembers: 3 });
    const created = await cluster.sf('create-service', 'postgres', 'small', 'em-db');
    assert.equal(created.code, 0, created.stdout + created.stderr);
    const key = await cluster.sf('create-service-key', 'em-db', 'writer', '--json');
    assert.equal(key.code, 0, key.stderr);
    uri = (JSON.parse(key.stdout) as { uri: string }).uri;
    await Writer.prepare(uri);
  });
  after(async () => {
    await cluster?.destroy();
  });

  it('runs etcd-1..3, each supervised, and every component is configured with the three', async () => {
    const names = (await components()).map((c) => c.name);
    for (const member of ['etcd-1', 'etcd-2', 'etcd-3']) assert.ok(names.includes(member), names.join(', '));
    assert.ok(!names.includes('etcd'));
    const shown = await status();
    assert.equal(shown.code, 0);
    assert.deepEqual(
      shown.etcd.map((m) => [m.name, m.healthy]),
      [
        ['etcd-1', true],
        ['etcd-2', true],
        ['etcd-3', true],
      ],
    );
    assert.equal(shown.etcd.filter((m) => m.leader).length, 1, 'sf status names one raft leader');
    for (const component of ['scheduler-1', 'broker-1', 'router-1', 'agent-node-1']) {
      const config = JSON.parse(await readFile(join(cluster.home, 'config', `${component}.json`), 'utf8')) as {
        etcdEndpoints: string[];
      };
      assert.equal(config.etcdEndpoints.length, 3, component);
    }
  });

  it("kill -9 of the raft leader's member, kept down: writes go on, the primary keeps its epoch, no process restarts, new work is done", async () => {
    const primaryBefore = await primaryOf('em-db');
    assert.ok(primaryBefore);
    // The worst member to lose: the raft leader (an election runs before etcd answers writes again).
    const root = cluster.etcdAsRoot();
    const victim = await (async () => {
      try {
        const { leader } = await root.maintenance.status();
        const { members } = await root.cluster.memberList({});
        const name = members.find((m) => m.ID === leader)?.name ?? '';
        assert.match(name, /^sf-[1-3]$/);
        return `etcd-${name.slice('sf-'.length)}`;
      } finally {
        root.close();
      }
    })();
    console.log(`# the raft leader is ${victim}`);
    const member = await supervision(victim);
    assert.ok(member.pid);
    const restartsBefore = new Map((await components()).map((c) => [c.name, c.restarts]));
    const writer = new Writer(uri);
    writer.start();
    let killedAt = 0;
    // Its supervisor is held, so the member stays down while the cluster is watched.
    process.kill(member.supervisorPid, 'SIGSTOP');
    try {
      await waitFor(() => writer.acked.length >= 50, { description: '50 acknowledged writes', timeoutMs: 60_000 });
      killedAt = Date.now();
      process.kill(member.pid, 'SIGKILL');
      // Past the agents' lease (3 s) and the schedulers' (2 s): a client stuck on the dead
      // member would have lost its lease by now.
      await waitFor(() => writer.acked.filter((a) => a.at > killedAt + 8000).length >= 20, {
        description: 'writes more than 8 s after the kill',
        timeoutMs: 120_000,
      });
      const created = await cluster.sf('create-service', 'redis', 'small', 'em-new');
      assert.equal(created.code, 0, created.stdout + created.stderr);
      const key = await cluster.sf('create-service-key', 'em-new', 'k', '--json');
      assert.equal(key.code, 0, key.stderr);
      // sf status says which member is gone and that another one leads, and exits 1.
      const shown = await status();
      assert.equal(shown.code, 1);
      assert.deepEqual(
        shown.etcd.filter((m) => !m.healthy).map((m) => m.name),
        [victim],
      );
      const newLeader = shown.etcd.find((m) => m.leader)?.name;
      assert.ok(newLeader && newLeader !== victim, `a new raft leader: ${newLeader}`);
      const primaryAfter = await primaryOf('em-db');
      assert.deepEqual(primaryAfter, primaryBefore, 'same primary, same epoch');
      const rows = await components();
      for (const row of rows.filter((r) => r.name !== victim)) {
        assert.ok(row.running, `${row.name} runs`);
        assert.equal(row.restarts, restartsBefore.get(row.name), `${row.name} did not restart`);
      }
      const events = JSON.parse((await cluster.sf('events', '--json', '--limit', '200')).stdout) as Array<{
        kind: string;
        at: string;
      }>;
      const after = events.filter((e) => Date.parse(e.at) > killedAt).map((e) => e.kind);
      assert.ok(!after.some((k) => /fenc|failover|lease-lost/.test(k)), after.join(', '));
    } finally {
      process.kill(member.supervisorPid, 'SIGCONT');
      await writer.stop();
    }
    console.log(`# longest write gap after kill -9 of ${victim}: ${longestGapMs(writer.acked, killedAt)} ms`);
    assert.deepEqual(await lostWrites(uri, writer.acked), []);
    await waitFor(async () => (await components()).find((c) => c.name === victim)?.running, {
      description: `${victim} restarted by its supervisor`,
      timeoutMs: 10_000,
      intervalMs: 100,
    });
  });
});
