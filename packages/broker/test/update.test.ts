import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { defaultCatalogDir, instanceCodec, readRecord } from '@service-foundry/core';
import {
  assertOsbError,
  call,
  dumpKeyspace,
  type Harness,
  markReady,
  postgresServiceId,
  provisionBody,
  smallPlanId,
  startHarness,
  uniqueId,
} from './helpers.js';

const mediumPlanId = 'test-medium-plan';

/** The real postgres entry plus a second plan allowing 1-3 replicas, to exercise updates. */
async function catalogWithTwoPlans(dir: string): Promise<void> {
  const entry = JSON.parse(await readFile(join(defaultCatalogDir(), 'postgres', 'service.json'), 'utf8'));
  const small = entry.osb.plans[0];
  const medium = structuredClone(small);
  medium.id = mediumPlanId;
  medium.name = 'medium';
  medium.description = 'Up to three Postgres servers';
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

describe('broker: updates (IO settings live; plans and sizes not yet)', () => {
  let h: Harness;
  let catalogDir: string;
  const id = uniqueId('upd');
  const patch = `/v2/service_instances/${id}?accepts_incomplete=true`;

  before(async () => {
    catalogDir = await mkdtemp(join(tmpdir(), 'sf-broker-catalog-'));
    await catalogWithTwoPlans(catalogDir);
    h = await startHarness({ catalogDir });
    const body = provisionBody({ plan_id: mediumPlanId, parameters: { replicas: 2 } });
    const res = await call(h.broker.url, 'PUT', `/v2/service_instances/${id}?accepts_incomplete=true`, { body });
    assert.equal(res.status, 202, res.text);
  });
  after(async () => {
    await h?.close();
    await rm(catalogDir, { recursive: true, force: true });
  });

  it('takes the plan default replicas from the catalog sizing', async () => {
    const other = uniqueId('default');
    const res = await call(h.broker.url, 'PUT', `/v2/service_instances/${other}?accepts_incomplete=true`, {
      body: provisionBody({ plan_id: mediumPlanId }),
    });
    assert.equal(res.status, 202);
    assert.equal((await readRecord(h.client, instanceCodec, h.keys.instance(other)))?.value.replicas, 2);
  });

  it('refuses updates while provisioning with ConcurrencyError', async () => {
    const res = await call(h.broker.url, 'PATCH', patch, { body: { service_id: postgresServiceId } });
    assert.equal(res.status, 422);
    assertOsbError(res.body, 'ConcurrencyError');
  });

  it('refuses a plan change and a parameter change with 422 and leaves etcd alone', async () => {
    await markReady(h.client, h.keys, id);
    const before = await dumpKeyspace(h.client, h.keys);
    const plan = await call(h.broker.url, 'PATCH', patch, {
      body: { service_id: postgresServiceId, plan_id: smallPlanId },
    });
    assert.equal(plan.status, 422);
    assertOsbError(plan.body, 'PlanChangeNotSupported');
    assert.match((plan.body as { description: string }).description, /medium to small/);

    // The plan's update schema lists what may change live; anything else is bad input.
    const params = await call(h.broker.url, 'PATCH', patch, {
      body: { service_id: postgresServiceId, parameters: { replicas: 3 } },
    });
    assert.equal(params.status, 400);
    assert.match((params.body as { description: string }).description, /replicas/);

    const wrongService = await call(h.broker.url, 'PATCH', patch, {
      body: { service_id: 'other', plan_id: mediumPlanId },
    });
    assert.equal(wrongService.status, 400);
    assert.equal(await dumpKeyspace(h.client, h.keys), before);
  });

  it('applies a local_io change asynchronously: 202, new IO policy and an update operation in etcd', async () => {
    const res = await call(h.broker.url, 'PATCH', patch, {
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
    const sync = await call(h.broker.url, 'PATCH', `/v2/service_instances/${id}`, {
      body: { service_id: postgresServiceId, parameters: { local_io: 'fsync' } },
    });
    assert.equal(sync.status, 422, 'an update that needs work is asynchronous');
    await markReady(h.client, h.keys, id);
  });

  it('accepts an update that changes nothing with 200 {}', async () => {
    const res = await call(h.broker.url, 'PATCH', patch, {
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
        await call(h.broker.url, 'PATCH', `/v2/service_instances/${uniqueId('nope')}`, {
          body: { service_id: postgresServiceId },
        })
      ).status,
      404,
    );
  });
});
