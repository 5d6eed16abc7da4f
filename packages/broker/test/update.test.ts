import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { defaultCatalogDir, instanceCodec, readRecord } from '@service-foundry/core';
import { suiteTempDir, uniqueId } from '@service-foundry/test-support';
import { assertOsbError, postgresServiceId, smallPlanId } from '@service-foundry/test-support/broker-calls';
import { type Harness, startHarness } from './helpers.js';

const mediumPlanId = 'test-medium-plan';

/** The real postgres entry plus a second plan allowing 1-3 replicas, to exercise updates. */
async function catalogWithTwoPlans(dir: string): Promise<void> {
  const entry = JSON.parse(await readFile(join(defaultCatalogDir(), 'postgres', 'service.json'), 'utf8'));
  const small = entry.osb.plans[0];
  const medium = structuredClone(small);
  medium.id = mediumPlanId;
  medium.name = 'medium';
  medium.description = 'Up to three Postgres servers';
  medium.plan_updateable = false;
  medium.schemas.service_instance.create.parameters.properties.replicas.maximum = 3;
  entry.osb.plans.push(medium);
  entry.plans.medium = {
    resources: entry.plans.small.resources,
    replicas: 2,
    connections: entry.plans.small.connections,
  };
  await mkdir(join(dir, 'postgres'), { recursive: true });
  await writeFile(join(dir, 'postgres', 'service.json'), JSON.stringify(entry));
}

describe('broker: updates (IO settings live; a plan marked not updateable refused)', () => {
  let h: Harness;
  const catalogDir = suiteTempDir('sf-broker-catalog');
  const id = uniqueId('upd');
  const patch = `/v2/service_instances/${id}?accepts_incomplete=true`;

  before(async () => {
    await catalogWithTwoPlans(catalogDir.path);
    h = await startHarness({ catalogDir: catalogDir.path });
    const res = await h.provision(id, { plan_id: mediumPlanId, parameters: { replicas: 2 } });
    assert.equal(res.status, 202, res.text);
  });
  after(async () => {
    await h?.close();
  });

  it('takes the plan default replicas from the catalog sizing', async () => {
    const other = uniqueId('default');
    const res = await h.provision(other, { plan_id: mediumPlanId });
    assert.equal(res.status, 202);
    assert.equal((await h.readInstance(other))?.replicas, 2);
  });

  it('refuses updates while provisioning with ConcurrencyError', async () => {
    const res = await h.call('PATCH', patch, { body: { service_id: postgresServiceId } });
    assert.equal(res.status, 422);
    assertOsbError(res.body, 'ConcurrencyError');
  });

  it('refuses a plan change and a parameter change with 422 and leaves etcd alone', async () => {
    await h.markReady(id);
    const before = await h.dump();
    const plan = await h.call('PATCH', patch, {
      body: { service_id: postgresServiceId, plan_id: smallPlanId },
    });
    assert.equal(plan.status, 422);
    assertOsbError(plan.body, 'PlanChangeNotSupported');
    assert.match((plan.body as { description: string }).description, /medium to small/);

    // The plan's update schema lists what may change live; anything else is bad input.
    const params = await h.call('PATCH', patch, {
      body: { service_id: postgresServiceId, parameters: { replicas: 3 } },
    });
    assert.equal(params.status, 400);
    assert.match((params.body as { description: string }).description, /replicas/);

    const wrongService = await h.call('PATCH', patch, {
      body: { service_id: 'other', plan_id: mediumPlanId },
    });
    assert.equal(wrongService.status, 400);
    assert.equal(await h.dump(), before);
  });

  it('applies a local_io change asynchronously: 202, new IO policy and an update operation in etcd', async () => {
    const res = await h.call('PATCH', patch, {
      body: { service_id: postgresServiceId, parameters: { local_io: 'batched' } },
    });
    assert.equal(res.status, 202, res.text);
    const record = (await readRecord(h.client, instanceCodec, h.keys.instance(id)))?.value;
    assert.deepEqual(
      record?.io,
      { durability: 'remote-fsync', localIo: 'batched' },
      'a two-replica plan defaults to synchronous',
    );
    assert.equal(record.operation.type, 'update');
    assert.equal(record.operation.id, (res.body as { operation: string }).operation);
    assert.equal(record.parameters.local_io, 'batched');
    const sync = await h.call('PATCH', `/v2/service_instances/${id}`, {
      body: { service_id: postgresServiceId, parameters: { local_io: 'fsync' } },
    });
    assert.equal(sync.status, 422, 'an update that needs work is asynchronous');
    await h.markReady(id);
  });

  it('accepts an update that changes nothing with 200 {}', async () => {
    const res = await h.call('PATCH', patch, {
      body: {
        service_id: postgresServiceId,
        plan_id: mediumPlanId,
        parameters: {},
        context: { platform: 'x' },
      },
    });
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, {});
    assert.equal(
      (
        await h.call('PATCH', `/v2/service_instances/${uniqueId('nope')}`, {
          body: { service_id: postgresServiceId },
        })
      ).status,
      404,
    );
  });
});
