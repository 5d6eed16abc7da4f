import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { json, placementCodec, readPrefix, schedulerMemberCodec, waitFor } from '@service-foundry/core';
import { makeTempDir, startTestEtcd, type TempDir, type TestEtcd } from '@service-foundry/test-support';
import { checkPlacements } from '../src/index.js';
import { ChildScheduler } from './child-scheduler.js';
import { instanceRecord, registerNode, schedulerConfig } from './helpers.js';

const slot = { cpuMillis: 100, memoryMb: 100, diskMb: 100 };
const nodeSize = { cpuMillis: 1000, memoryMb: 1000, diskMb: 1000 };
// Long enough that a loaded machine does not expire healthy sessions, short enough for the test.
const lockTtlSeconds = 3;

describe('a scheduler stopped or killed while it holds node locks', () => {
  let f: TestEtcd;
  let dir: TempDir;
  let children: ChildScheduler[] = [];
  before(async () => {
    f = await startTestEtcd();
    dir = await makeTempDir('sf-sched-children');
  });
  beforeEach(() => f.isolate());
  after(async () => {
    await Promise.all(children.map((c) => c.kill()));
    await f.stop();
    await dir?.remove();
  });

  /**
   * 30 nodes × 10 slots; three schedulers, `victim` stops itself right after its first lock
   * request. In leader mode the victim starts first, so it is the leader.
   */
  async function cluster(
    mode: 'leader' | 'active-active',
  ): Promise<{ victim: ChildScheduler; others: ChildScheduler[] }> {
    for (let i = 0; i < 30; i++) await registerNode(f, `node-${i}`, nodeSize, 60, { zone: `z${i % 3}` });
    const config = schedulerConfig(f, { lockTtlSeconds, controller: false, mode });
    const name = (suffix: string) => `${f.keys.root.slice(1)}-${suffix}`;
    const startVictim = () =>
      ChildScheduler.start(dir.path, name('victim'), { ...config, faultInjection: { stopAfterLockAcquire: true } });
    const victim = mode === 'leader' ? await startVictim() : undefined;
    const others = [
      await ChildScheduler.start(dir.path, name('a'), config),
      await ChildScheduler.start(dir.path, name('b'), config),
    ];
    const last = victim ?? (await startVictim());
    children = [...children, ...others, last];
    await waitFor(
      async () => (await readPrefix(f.client, schedulerMemberCodec, f.keys.schedulers())).items.size === 3,
      {
        description: 'three schedulers registered',
      },
    );
    return { victim: last, others };
  }

  async function stoppedHoldingLocks(victim: ChildScheduler): Promise<void> {
    await waitFor(async () => (await victim.state()) === 'T', {
      description: `victim stopped itself holding locks; its output:\n${victim.output.slice(-3000)}`,
    }).catch((error: Error) => {
      throw new Error(`${error.message}\n${victim.output.slice(-3000)}`);
    });
  }

  async function createInstances(prefix: string, count: number): Promise<number> {
    let replicas = 0;
    for (let i = 0; i < count; i++) {
      const n = 1 + (i % 3);
      replicas += n;
      await f.client
        .put(f.keys.instance(`${prefix}-${i}`))
        .value(json(instanceRecord(`${prefix}-${i}`, n, slot)))
        .exec();
    }
    return replicas;
  }

  async function allPlaced(count: number): Promise<void> {
    await waitFor(async () => (await readPrefix(f.client, placementCodec, f.keys.placements())).items.size === count, {
      description: `${count} placements`,
      timeoutMs: 30_000,
    });
  }

  async function victimLocks(victim: ChildScheduler): Promise<number> {
    const locks = await f.client.getAll().prefix(`${f.keys.root}/locks/nodes/`).strings();
    return Object.values(locks).filter((owner) => owner === victim.name).length;
  }

  for (const mode of ['leader', 'active-active'] as const) {
    it(`${mode}: SIGSTOP past its lease, then SIGCONT: the others finish, its late commit writes nothing, checker passes`, async () => {
      const { victim, others } = await cluster(mode);
      const replicas = await createInstances('p', 60);
      await stoppedHoldingLocks(victim);
      assert.ok((await victimLocks(victim)) > 0, 'the stopped scheduler holds node locks');
      // Its lease expires; its share and its nodes go to the others.
      await allPlaced(replicas);
      assert.equal(await victimLocks(victim), 0, 'its locks went with its lease');
      assert.deepEqual(await checkPlacements(f.client, f.keys, { expectAllPlaced: true }), []);

      victim.child.kill('SIGCONT');
      // It sends the commit it prepared before stopping: every node transaction must fail.
      const late = await waitFor(() => victim.logs('placement pass').find((l) => Number(l.conflicts) > 0), {
        description: 'the resumed scheduler reports its stale commit rejected',
        timeoutMs: 15_000,
      });
      assert.equal(late.placed, 0, 'nothing of the stale commit was written');
      await waitFor(() => victim.logs('scheduler session started').length === 2, {
        description: 'the resumed scheduler starts a new session',
        timeoutMs: 15_000,
      });
      const more = await createInstances('q', 30);
      await allPlaced(replicas + more);
      assert.deepEqual(await checkPlacements(f.client, f.keys, { expectAllPlaced: true }), []);
      const placements = [...(await readPrefix(f.client, placementCodec, f.keys.placements())).items.values()];
      assert.equal(new Set(placements.map((p) => `${p.value.instanceId}/${p.value.ordinal}`)).size, replicas + more);
      for (const child of [victim, ...others]) assert.equal(await child.stop(), 0, `${child.name} exits 0 on SIGTERM`);
    });
  }

  it('kill -9 while holding locks: no half placement, the others place everything once its lease expires', async () => {
    const { victim, others } = await cluster('active-active');
    const replicas = await createInstances('k', 60);
    await stoppedHoldingLocks(victim);
    assert.ok((await victimLocks(victim)) > 0);
    await victim.kill();
    await allPlaced(replicas);
    assert.deepEqual(await checkPlacements(f.client, f.keys, { expectAllPlaced: true }), []);
    assert.equal(await victimLocks(victim), 0);
    for (const child of others) assert.equal(await child.stop(), 0);
  });
});
