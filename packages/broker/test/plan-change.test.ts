import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { defaultCatalogDir, type InstanceRecord, json, type PrimaryRecord } from '@service-foundry/core';
import { suiteTempDir, uniqueId } from '@service-foundry/test-support';
import { assertOsbError, postgresServiceId, smallPlanId } from '@service-foundry/test-support/broker-calls';
import { type Harness, startHarness } from './helpers.js';

const haSmallPlanId = '4ff07bf1-4cb4-487f-b373-fa97afb00ef8';
const mediumPlanId = '8a7f3c52-1e4b-4c0f-9d36-52b1f0e7c9a4';
const smallDiskPlanId = 'test-small-disk-plan';
const asyncPath = (id: string) => `/v2/service_instances/${id}?accepts_incomplete=true`;

/** The real catalog plus a postgres plan with half the disk (a volume cannot shrink). */
async function catalogWithSmallDiskPlan(dir: string): Promise<void> {
  for (const service of ['postgres', 'redis']) {
    const entry = JSON.parse(await readFile(join(defaultCatalogDir(), service, 'service.json'), 'utf8'));
    if (service === 'postgres') {
      const smallDisk = structuredClone(entry.osb.plans[0]);
      smallDisk.id = smallDiskPlanId;
      smallDisk.name = 'small-disk';
      entry.osb.plans.push(smallDisk);
      entry.plans['small-disk'] = { ...entry.plans.small, resources: { ...entry.plans.small.resources, diskMb: 512 } };
    }
    await mkdir(join(dir, service), { recursive: true });
    await writeFile(join(dir, service, 'service.json'), JSON.stringify(entry));
  }
}

describe('broker: plan changes (small ↔ ha-small)', () => {
  let h: Harness;
  const catalogDir = suiteTempDir('sf-plan-change-catalog');

  before(async () => {
    await catalogWithSmallDiskPlan(catalogDir.path);
    h = await startHarness({ catalogDir: catalogDir.path });
  });
  after(async () => {
    await h?.close();
  });

  async function readyInstance(extra: Record<string, unknown> = {}): Promise<string> {
    const id = uniqueId('plan');
    const res = await h.provision(id, extra);
    assert.equal(res.status, 202, res.text);
    await h.markReady(id);
    return id;
  }

  async function putPrimary(id: string, ordinal: number): Promise<void> {
    const primary: PrimaryRecord = {
      instanceId: id,
      ordinal,
      node: `node-${ordinal}`,
      host: '10.0.0.1',
      port: 5432,
      electedAt: new Date().toISOString(),
    };
    await h.client.put(h.keys.primary(id)).value(json(primary)).exec();
  }

  it('adds replicas: 202, three replicas in the record, remote-fsync held back until they run', async () => {
    const id = await readyInstance();
    const body = { service_id: postgresServiceId, plan_id: haSmallPlanId };
    const res = await h.call('PATCH', asyncPath(id), { body });
    assert.equal(res.status, 202, res.text);
    const record = (await h.readInstance(id)) as InstanceRecord;
    assert.equal(record.planId, haSmallPlanId);
    assert.equal(record.planName, 'ha-small');
    assert.equal(record.replicas, 3);
    assert.deepEqual(
      record.io,
      { durability: 'async', localIo: 'fsync' },
      'no commit waits for a standby still cloning',
    );
    assert.deepEqual(record.operation.pendingIo, { durability: 'remote-fsync', localIo: 'fsync' });
    assert.equal(record.failover?.fencing, 'required', 'the ha plan fences before failing over');
    assert.equal(record.operation.type, 'update');
    assert.match(record.operation.description, /small → ha-small \(1 → 3 replicas\)/);

    const again = await h.call('PATCH', asyncPath(id), { body });
    assert.equal(again.status, 202, 'the same request while it runs: the same operation');
    assert.deepEqual(again.body, res.body);
    const other = await h.call('PATCH', asyncPath(id), {
      body: { service_id: postgresServiceId, plan_id: smallPlanId },
    });
    assert.equal(other.status, 422);
    assertOsbError(other.body, 'ConcurrencyError');
  });

  it('keeps the user’s settings across the change, and refuses those the new plan does not allow (400, nothing changed)', async () => {
    const id = await readyInstance({ parameters: { local_io: 'batched' } });
    const res = await h.call('PATCH', asyncPath(id), {
      body: { service_id: postgresServiceId, plan_id: haSmallPlanId },
    });
    assert.equal(res.status, 202, res.text);
    assert.deepEqual((await h.readInstance(id))?.operation.pendingIo, {
      durability: 'remote-fsync',
      localIo: 'batched',
    });

    const ha = await readyInstance({ plan_id: haSmallPlanId, parameters: { durability: 'received' } });
    await putPrimary(ha, 0);
    const before = await h.dump();
    const down = await h.call('PATCH', asyncPath(ha), {
      body: { service_id: postgresServiceId, plan_id: smallPlanId },
    });
    assert.equal(down.status, 400, down.text);
    assert.match((down.body as { description: string }).description, /plan postgres\/small.*durability/);
    assert.equal(await h.dump(), before);
  });

  it('removes replicas: the smaller count and async at once (the standbys go only after), primary kept', async () => {
    const id = await readyInstance({ plan_id: haSmallPlanId });
    await putPrimary(id, 0);
    const res = await h.call('PATCH', asyncPath(id), { body: { service_id: postgresServiceId, plan_id: smallPlanId } });
    assert.equal(res.status, 202, res.text);
    const record = (await h.readInstance(id)) as InstanceRecord;
    assert.equal(record.replicas, 1);
    assert.deepEqual(record.io, { durability: 'async', localIo: 'fsync' });
    assert.equal(record.operation.pendingIo, undefined);
    assert.equal(record.failover?.fencing, 'off');
  });

  it('refuses to drop the replica that is the primary, naming the switchover that allows it (422, nothing changed)', async () => {
    const id = await readyInstance({ plan_id: haSmallPlanId });
    await putPrimary(id, 2);
    const before = await h.dump();
    const res = await h.call('PATCH', asyncPath(id), { body: { service_id: postgresServiceId, plan_id: smallPlanId } });
    assert.equal(res.status, 422, res.text);
    assertOsbError(res.body, 'PlanChangeNotSupported');
    assert.match((res.body as { description: string }).description, /primary is replica 2.*sf switchover .* --to 0/);
    assert.equal(await h.dump(), before);
  });

  it('resizes: 202, the new CPU, memory and disk in the record (the controller resizes each replica in place)', async () => {
    const id = await readyInstance();
    const res = await h.call('PATCH', asyncPath(id), {
      body: { service_id: postgresServiceId, plan_id: mediumPlanId },
    });
    assert.equal(res.status, 202, res.text);
    const record = (await h.readInstance(id)) as InstanceRecord;
    assert.equal(record.planName, 'medium');
    assert.equal(record.replicas, 1);
    assert.deepEqual(record.resources, { cpuMillis: 1000, memoryMb: 1024, diskMb: 2048 });
    assert.equal(
      record.operation.description,
      'changing plan small → medium (1 replica; each 500m CPU, 512 MB memory, 1024 MB disk → 1000m CPU, 1024 MB memory, 2048 MB disk)',
    );
    const back = await h.call('PATCH', asyncPath(id), {
      body: { service_id: postgresServiceId, plan_id: smallPlanId },
    });
    assert.equal(back.status, 422, 'one update at a time');
    assertOsbError(back.body, 'ConcurrencyError');
  });

  it('refuses a smaller disk, and a size a node holding a replica has no room for (422, nothing changed)', async () => {
    const id = await readyInstance();
    const before = await h.dump();
    const shrink = await h.call('PATCH', asyncPath(id), {
      body: { service_id: postgresServiceId, plan_id: smallDiskPlanId },
    });
    assert.equal(shrink.status, 422, shrink.text);
    assertOsbError(shrink.body, 'PlanChangeNotSupported');
    assert.match((shrink.body as { description: string }).description, /disk would shrink from 1024 MB to 512 MB/);
    assert.equal(await h.dump(), before);

    // Replica 0 on a node whose other tenants leave 300m CPU free: 1 CPU does not fit.
    const node = uniqueId('node');
    const capacity = { cpuMillis: 1000, memoryMb: 8192, diskMb: 100_000 };
    const record = { name: node, address: '127.0.0.1', capacity, labels: {}, startedAt: new Date().toISOString() };
    const replicas = {
      [`${id}/0`]: { instanceId: id, ordinal: 0, resources: { cpuMillis: 500, memoryMb: 512, diskMb: 1024 } },
      'other/0': { instanceId: 'other', ordinal: 0, resources: { cpuMillis: 200, memoryMb: 512, diskMb: 1024 } },
    };
    const placement = { instanceId: id, ordinal: 0, node, placedAt: new Date().toISOString(), scheduler: 's' };
    await h.client.put(h.keys.node(node)).value(json(record)).exec();
    await h.client.put(h.keys.allocation(node)).value(json({ node, replicas })).exec();
    await h.client.put(h.keys.placement(id, 0)).value(json(placement)).exec();
    const placed = await h.dump();
    const full = await h.call('PATCH', asyncPath(id), {
      body: { service_id: postgresServiceId, plan_id: mediumPlanId },
    });
    assert.equal(full.status, 422, full.text);
    assertOsbError(full.body, 'PlanChangeNotSupported');
    assert.equal(
      (full.body as { description: string }).description,
      `instance ${id} cannot move from plan small to medium: not every node holding a replica has room for the new size: node ${node} (replica 0): 1000 millicores CPU asked, 800 free`,
    );
    assert.equal(await h.dump(), placed);
  });

  it('refuses what is not built, each with 422 and a reason: volume shipping, no accepts_incomplete', async () => {
    const id = await readyInstance();
    const before = await h.dump();
    const sync = await h.call('PATCH', `/v2/service_instances/${id}`, {
      body: { service_id: postgresServiceId, plan_id: haSmallPlanId },
    });
    assert.equal(sync.status, 422);
    assertOsbError(sync.body, 'AsyncRequired');
    const unknown = await h.call('PATCH', asyncPath(id), { body: { service_id: postgresServiceId, plan_id: 'nope' } });
    assert.equal(unknown.status, 400);
    assert.equal(await h.dump(), before);

    const redis = uniqueId('redis');
    const catalog = JSON.parse(await readFile(join(catalogDir.path, 'redis', 'service.json'), 'utf8'));
    const plans = catalog.osb.plans as { id: string; name: string }[];
    const planId = (name: string) => plans.find((p) => p.name === name)?.id as string;
    const provisioned = await h.provision(redis, { service_id: catalog.osb.id, plan_id: planId('standby-small') });
    assert.equal(provisioned.status, 202, provisioned.text);
    await h.markReady(redis);
    const beforeRedis = await h.dump();
    const shipping = await h.call('PATCH', asyncPath(redis), {
      body: { service_id: catalog.osb.id, plan_id: planId('ha-small') },
    });
    assert.equal(shipping.status, 422);
    assertOsbError(shipping.body, 'PlanChangeNotSupported');
    assert.match((shipping.body as { description: string }).description, /not updateable \(plan standby-small\)/);
    assert.equal(await h.dump(), beforeRedis);
  });
});
