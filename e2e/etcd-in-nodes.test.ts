import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { makeTempDir } from '@service-foundry/test-support';
import { cliMain, startCluster, type TestCluster } from '@service-foundry/test-support/cluster';

const run = promisify(execFile);

interface EtcdRow {
  name: string;
  node?: string;
  healthy: boolean;
  leader: boolean;
}

interface Round {
  target: string;
  epochBefore: number;
  epochAfter: number;
  promotedAfterMs: number | null;
  verdict: {
    acknowledged: number;
    lost: number[];
    oldPrimaryWritesAfterPromotion: number;
    promiseKept: boolean;
    broken: string[];
  };
}

/**
 * `sf up --etcd-members 3` on isolated nodes: one member inside each node, serving on the
 * node's address, as on hosts. The node holding the primary loses power (its member goes
 * with it) or is cut from etcd (its member left a minority of one): the other two members
 * keep the control plane going, the instance fails over without losing an acknowledged
 * write, and the member is back in the cluster after the heal.
 */
describe('etcd members inside isolated nodes', () => {
  let cluster: TestCluster;
  const etcdRows = async (): Promise<EtcdRow[]> =>
    (JSON.parse((await cluster.sf('status', '--json')).stdout) as { etcd: EtcdRow[] }).etcd;
  const memberPid = async (name: string) =>
    Number((await readFile(join(cluster.home, 'run', `${name}.pid`), 'utf8')).trim());
  const chaos = async (fault: string): Promise<{ code: number; round: Round; stderr: string }> => {
    const result = await cluster.sf(
      'chaos',
      'en-db',
      '--fault',
      fault,
      '--target',
      'primary',
      '--duration',
      '10',
      '--json',
    );
    const rounds = JSON.parse(result.stdout || '[]') as Round[];
    assert.equal(rounds.length, 1, `one round reported (exit ${result.code}): ${result.stderr}`);
    return { code: result.code, round: rounds[0] as Round, stderr: result.stderr };
  };

  it('refuses more members than isolated nodes, before making anything', async () => {
    const home = await makeTempDir('sf-etcd-in-nodes-refused');
    try {
      const refused = await run(
        process.execPath,
        [cliMain, 'up', '--nodes', '2', '--etcd-members', '3', '--random-ports'],
        {
          env: { ...process.env, SF_HOME: home.path },
        },
      ).then(
        () => ({ code: 0, stderr: '' }),
        (error: { code?: number; stderr?: string }) => ({ code: error.code ?? 1, stderr: error.stderr ?? '' }),
      );
      assert.equal(refused.code, 2, refused.stderr);
      assert.match(
        refused.stderr,
        /--etcd-members 3 on isolated nodes puts one member in each node: give --nodes 3 or more/,
      );
      assert.deepEqual(await readdir(home.path), [], 'no cluster file, no state');
    } finally {
      await home.remove();
    }
  });

  before(async () => {
    cluster = await startCluster(3, { etcdMembers: 3, oneSchedulerOneBroker: true });
    const created = await cluster.sf(
      'create-service',
      'postgres',
      'ha-small',
      'en-db',
      '-c',
      JSON.stringify({ durability: 'remote-fsync' }),
    );
    assert.equal(created.code, 0, created.stdout + created.stderr);
  });
  after(async () => {
    await cluster?.destroy();
  });

  it('runs etcd-N inside node-N, on its address, and gives every component the three node addresses', async () => {
    const rows = await etcdRows();
    assert.deepEqual(
      rows.map((m) => [m.name, m.node, m.healthy]),
      [
        ['etcd-1', 'node-1', true],
        ['etcd-2', 'node-2', true],
        ['etcd-3', 'node-3', true],
      ],
    );
    const clusterFile = JSON.parse(await readFile(join(cluster.home, 'cluster.json'), 'utf8')) as {
      clusterId: string;
      nodes: Array<{ name: string; address: string }>;
    };
    for (const [i, node] of clusterFile.nodes.entries()) {
      const pid = await memberPid(`etcd-${i + 1}`);
      const { stdout } = await run('ip', ['netns', 'identify', String(pid)]);
      assert.equal(
        stdout.trim(),
        `${clusterFile.clusterId}-${node.name}`,
        `etcd-${i + 1} runs in ${node.name}'s namespace`,
      );
    }
    const addresses = clusterFile.nodes.map((n) => n.address);
    for (const component of ['scheduler-1', 'broker-1', 'router-1', 'agent-node-2']) {
      const config = JSON.parse(await readFile(join(cluster.home, 'config', `${component}.json`), 'utf8')) as {
        etcdEndpoints: string[];
      };
      assert.deepEqual(
        config.etcdEndpoints.map((e) => new URL(e).hostname),
        addresses,
        `${component} reaches the members at their nodes`,
      );
    }
  });

  for (const fault of ['power-loss', 'etcd-partition'] as const) {
    it(`${fault} of the primary's node, which holds a member: promise kept, a new primary, the member back`, async () => {
      const primaryNode = (await cluster.sfJson<{ primary: { node: string } | null }>('service', 'en-db', '--json'))
        .primary?.node;
      assert.ok(primaryNode, 'the instance has a primary');
      const member = `etcd-${primaryNode.slice('node-'.length)}`;
      const pidBefore = await memberPid(member);
      const { code, round, stderr } = await chaos(fault);
      assert.equal(round.verdict.promiseKept, true, round.verdict.broken.join('; '));
      assert.equal(code, 0, stderr);
      assert.deepEqual(round.verdict.lost, []);
      assert.equal(round.verdict.oldPrimaryWritesAfterPromotion, 0);
      assert.ok(round.epochAfter > round.epochBefore, `epoch ${round.epochBefore} -> ${round.epochAfter}`);
      assert.equal(round.target, primaryNode);
      if (fault === 'power-loss') {
        assert.notEqual(
          await memberPid(member),
          pidBefore,
          `${member} went with its node and was started with it again`,
        );
      }
      console.log(
        `# ${fault} of ${round.target} (with ${member}): promoted after ${((round.promotedAfterMs ?? 0) / 1000).toFixed(2)} s`,
      );
      const rows = await etcdRows();
      assert.deepEqual(
        rows.filter((m) => !m.healthy).map((m) => m.name),
        [],
        `every member answers after the heal, ${member} included`,
      );
      assert.equal(rows.filter((m) => m.leader).length, 1, 'one raft leader');
    });
  }
});
