import assert from 'node:assert/strict';
import { cp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import {
  defaultCatalogDir,
  eventCodec,
  json,
  nodeCodec,
  placementCodec,
  readPrefix,
  readRecord,
  schedulerMemberCodec,
  schedulingStatusCodec,
  waitFor,
} from '@service-foundry/core';
import { silentLogger, startTestEtcd, type TestEtcd, tempDirFor } from '@service-foundry/test-support';
import { checkPlacements, type RunningScheduler, startScheduler } from '../src/index.js';
import { instanceRecord, registerNode, schedulerConfig } from './helpers.js';

const slot = { cpuMillis: 200, memoryMb: 100, diskMb: 100 };
const nodeSize = { cpuMillis: 1000, memoryMb: 10_000, diskMb: 10_000 };

describe('schedulers against a real etcd', () => {
  let f: TestEtcd;
  const running: RunningScheduler[] = [];
  before(async () => {
    f = await startTestEtcd();
  });
  beforeEach(() => f.isolate());
  after(async () => {
    await Promise.all(running.map((s) => s.stop()));
    await f.stop();
  });

  async function start(name: string, extra: Record<string, unknown> = {}): Promise<RunningScheduler> {
    const scheduler = await startScheduler(schedulerConfig(f, { controller: false, name, ...extra }), {
      log: silentLogger('scheduler-test'),
    });
    running.push(scheduler);
    return scheduler;
  }
  async function stop(scheduler: RunningScheduler): Promise<void> {
    running.splice(running.indexOf(scheduler), 1);
    await scheduler.stop();
  }
  const placements = async () =>
    [...(await readPrefix(f.client, placementCodec, f.keys.placements())).items.values()].map((i) => i.value);
  const status = (id: string) => readRecord(f.client, schedulingStatusCodec, f.keys.schedulingStatus(id));
  const events = async () =>
    [...(await readPrefix(f.client, eventCodec, f.keys.events())).items.values()].map((i) => i.value);
  const create = (id: string, replicas: number, resources = slot) =>
    f.client
      .put(f.keys.instance(id))
      .value(json(instanceRecord(id, replicas, resources)))
      .exec();
  const control = (node: string, cordoned: boolean, draining = false) =>
    f.client
      .put(f.keys.nodeControl(node))
      .value(json({ node, cordoned, draining, reason: 'test', updatedAt: new Date().toISOString(), by: 'test' }))
      .exec();

  it('three schedulers racing fill the cluster exactly: no node over capacity, no replica twice, one per zone', async () => {
    // 3 zones × 3 nodes × 5 slots; 15 instances × 3 replicas need exactly one slot per zone each.
    for (const zone of ['a', 'b', 'c']) {
      for (let i = 0; i < 3; i++) await registerNode(f, `${zone}${i}`, nodeSize, 30, { zone });
    }
    // A leader-mode scheduler (the eldest, so it believes it owns everything) beside two
    // active-active ones (which share the instances between all three): every instance is
    // worked on by two schedulers at once — the race the transactions must survive.
    const schedulers = [
      await start('race-a', { mode: 'leader' }),
      await start('race-b', { mode: 'active-active' }),
      await start('race-c', { mode: 'active-active' }),
    ];
    await waitFor(
      async () => (await readPrefix(f.client, schedulerMemberCodec, f.keys.schedulers())).items.size === 3,
      {
        description: 'three schedulers registered',
      },
    );
    for (let i = 0; i < 15; i++) await create(`db-${i}`, 3);
    await waitFor(async () => (await placements()).length === 45, { description: '45 placements', timeoutMs: 20_000 });
    await create('late-1', 1);
    const late = await waitFor(() => status('late-1'), { description: 'late-1 explained', timeoutMs: 10_000 });
    assert.equal(late.value.placed, 0);
    assert.equal(late.value.pending[0]?.reason, 'no node fits (9 nodes: not enough free 200m cpu)');
    for (const s of schedulers) await stop(s);
    assert.deepEqual(await checkPlacements(f.client, f.keys), []);
    const byScheduler = new Set((await placements()).map((p) => p.scheduler));
    assert.ok(byScheduler.size >= 2, `placements by ${[...byScheduler].join(', ')}`);
  });

  it('a replica waits, visibly, when no node fits, and is placed once one does', async () => {
    await create('big-db', 2, { cpuMillis: 5000, memoryMb: 16_384, diskMb: 1 });
    await registerNode(f, 'small-node', nodeSize);
    await start('waits');
    const waiting = await waitFor(() => status('big-db'), { description: 'big-db explained', timeoutMs: 10_000 });
    // noRoom: no live node has the free resources at all (the controller fails such a provision).
    assert.deepEqual(waiting.value.pending, [
      { ordinal: 0, reason: 'no node fits (1 node: not enough free 5 cpu, 16 GiB memory)', noRoom: true },
      { ordinal: 1, reason: 'no node fits (1 node: not enough free 5 cpu, 16 GiB memory)', noRoom: true },
    ]);
    await waitFor(async () => (await events()).some((e) => e.kind === 'replica-pending' && e.instanceId === 'big-db'), {
      description: 'a replica-pending event',
    });
    const huge = { cpuMillis: 8000, memoryMb: 32_768, diskMb: 1000 };
    await registerNode(f, 'huge-1', huge);
    const half = await waitFor(
      async () => {
        const s = await status('big-db');
        return s?.value.placed === 1 ? s.value : undefined;
      },
      { description: 'one of two placed', timeoutMs: 10_000 },
    );
    assert.deepEqual(half.pending, [
      {
        ordinal: 1,
        reason:
          'no node fits (1 node: already holds replica 0 of this instance; 1 node: not enough free 5 cpu, 16 GiB memory)',
        // huge-1 has 3 of the 5 cpu left after replica 0: no node has room.
        noRoom: true,
      },
    ]);
    await registerNode(f, 'huge-2', huge);
    await waitFor(async () => (await status('big-db')) === undefined, {
      description: 'status deleted once fully placed',
      timeoutMs: 10_000,
    });
    const nodes = (await placements()).map((p) => p.node).sort();
    assert.deepEqual(nodes, ['huge-1', 'huge-2']);
  });

  it('cordon stops new placements, uncordon resumes them; drain reports what remains', async () => {
    await registerNode(f, 'c1', nodeSize);
    await create('before', 1);
    await start('cordon');
    await waitFor(async () => (await placements()).length === 1, { description: 'first placement' });
    await control('c1', true);
    await create('during', 1);
    const blocked = await waitFor(() => status('during'), { description: 'during explained', timeoutMs: 10_000 });
    assert.equal(blocked.value.pending[0]?.reason, 'no node fits (1 node: cordoned)');
    assert.equal(await readRecord(f.client, placementCodec, f.keys.placement('during', 0)), undefined);
    await control('c1', false, true);
    const drain = await waitFor(
      async () => (await events()).find((e) => e.kind === 'node-draining' && e.node === 'c1'),
      { description: 'drain report', timeoutMs: 10_000 },
    );
    assert.equal(drain.message, 'node c1 is draining: 1 replica remain (before/0); relocating them one at a time');
    assert.equal(
      await readRecord(f.client, placementCodec, f.keys.placement('during', 0)),
      undefined,
      'draining takes nothing new',
    );
    await control('c1', false);
    const placed = await waitFor(() => readRecord(f.client, placementCodec, f.keys.placement('during', 0)), {
      description: 'placed after uncordon',
      timeoutMs: 10_000,
    });
    assert.equal(placed.value.node, 'c1');
  });

  it('a node whose lease expires keeps its replicas, pending until fenced; once fenced they move', async () => {
    // Registered like an agent, but nobody renews the lease: it expires by itself after 5 s.
    await registerNode(f, 'doomed', nodeSize, 5, { zone: 'a' });
    await create('stateful', 1);
    await start('converge', { lockTtlSeconds: 2 });
    const first = await waitFor(() => readRecord(f.client, placementCodec, f.keys.placement('stateful', 0)), {
      description: 'first placement',
    });
    assert.equal(first.value.node, 'doomed');
    await registerNode(f, 'spare', nodeSize, 30, { zone: 'b' });
    const waiting = await waitFor(() => status('stateful'), { description: 'stateful explained', timeoutMs: 10_000 });
    assert.equal(await readRecord(f.client, nodeCodec, f.keys.node('doomed')), undefined, 'the lease expired');
    assert.deepEqual(waiting.value.pending, [
      { ordinal: 0, reason: 'node doomed is not responding; waiting for fencing to confirm before moving replica 0' },
    ]);
    assert.equal(
      (await readRecord(f.client, placementCodec, f.keys.placement('stateful', 0)))?.value.node,
      'doomed',
      'not moved while the node is only silent',
    );
    assert.equal(waiting.value.placed, 0);
    // Fencing in progress, then failed: still not moved.
    const fence = (state: string) =>
      f.client
        .put(f.keys.fence('doomed'))
        .value(json({ node: 'doomed', state, reason: 'test', by: 'controller', at: new Date().toISOString() }))
        .exec();
    await fence('fencing');
    await fence('failed');
    await waitFor(async () => /fencing it failed/.test((await status('stateful'))?.value.pending[0]?.reason ?? ''), {
      description: 'fencing failure shown',
      timeoutMs: 10_000,
    });
    assert.equal((await readRecord(f.client, placementCodec, f.keys.placement('stateful', 0)))?.value.node, 'doomed');
    // What the controller writes once the node is confirmed off.
    await fence('fenced');
    const moved = await waitFor(
      async () => {
        const p = await readRecord(f.client, placementCodec, f.keys.placement('stateful', 0));
        return p?.value.node === 'spare' ? p.value : undefined;
      },
      { description: 'moved to spare', timeoutMs: 10_000 },
    );
    assert.deepEqual(moved.previousNodes, ['doomed']);
    await waitFor(async () => (await status('stateful')) === undefined, { description: 'status cleared' });
    const nodes = new Map([
      ['doomed', { capacity: nodeSize, labels: { zone: 'a' } }],
      ['spare', { capacity: nodeSize, labels: { zone: 'b' } }],
    ]);
    assert.deepEqual(await checkPlacements(f.client, f.keys, { nodes, expectAllPlaced: true }), []);
    assert.ok(
      (await events()).some((e) => e.kind === 'replica-moved' && e.message.includes('from doomed (fenced) to spare')),
    );
  });

  it('in leader mode only the eldest scheduler places; a standby takes over when it stops', async () => {
    for (let i = 0; i < 3; i++) await registerNode(f, `l${i}`, nodeSize);
    const leader = await start('leader-1', { mode: 'leader', lockTtlSeconds: 2 });
    await start('leader-2', { mode: 'leader', lockTtlSeconds: 2 });
    for (let i = 0; i < 6; i++) await create(`ldb-${i}`, 1);
    await waitFor(async () => (await placements()).length === 6, { description: '6 placed' });
    assert.deepEqual([...new Set((await placements()).map((p) => p.scheduler))], ['leader-1']);
    await stop(leader);
    await create('ldb-after', 1);
    const after = await waitFor(() => readRecord(f.client, placementCodec, f.keys.placement('ldb-after', 0)), {
      description: 'placed by the standby',
      timeoutMs: 10_000,
    });
    assert.equal(after.value.scheduler, 'leader-2');
  });

  it("places a plan's replicas only on nodes with the labels it requires", async (t) => {
    const dir = await tempDirFor(t, 'sf-catalog');
    await cp(join(defaultCatalogDir(), 'postgres', 'service.json'), join(dir, 'postgres', 'service.json'));
    const file = join(dir, 'postgres', 'service.json');
    const entry = JSON.parse(await readFile(file, 'utf8'));
    entry.plans.small.constraints = { nodeLabels: { disk: 'ssd' } };
    await writeFile(file, JSON.stringify(entry));
    await registerNode(f, 'hdd-1', nodeSize, 30, { disk: 'hdd' });
    await registerNode(f, 'hdd-2', nodeSize, 30, {});
    await create('picky', 1);
    await start('labels', { catalogDir: dir });
    const waiting = await waitFor(() => status('picky'), { description: 'picky explained', timeoutMs: 10_000 });
    assert.equal(waiting.value.pending[0]?.reason, 'no node fits (2 nodes: lacks label disk=ssd)');
    await registerNode(f, 'ssd-1', nodeSize, 30, { disk: 'ssd' });
    const placed = await waitFor(() => readRecord(f.client, placementCodec, f.keys.placement('picky', 0)), {
      description: 'placed on the ssd node',
      timeoutMs: 10_000,
    });
    assert.equal(placed.value.node, 'ssd-1');
  });
});
