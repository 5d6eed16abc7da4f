import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Catalog, type InstanceRecord, json } from '@service-foundry/core';
import { uniqueId } from '@service-foundry/test-support';
import {
  assertOsbError,
  postgresServiceId,
  provisionBody,
  smallPlanId,
} from '@service-foundry/test-support/broker-calls';
import { type Harness, startHarness } from './helpers.js';

const haSmallPlanId = '4ff07bf1-4cb4-487f-b373-fa97afb00ef8';
const path = (id: string) => `/v2/service_instances/${id}`;
const asyncPath = (id: string) => `${path(id)}?accepts_incomplete=true`;

/** OSB v2.17 "Updating a Service Instance"; upgrades (maintenance_info) are in osb-upgrade.test.ts. */
describe('OSB: updating', () => {
  let h: Harness;
  let version: string;
  before(async () => {
    h = await startHarness();
    const plan = (await Catalog.load()).byServiceId(postgresServiceId)?.osb.plans.find((p) => p.id === smallPlanId);
    assert.ok(plan?.maintenance_info);
    version = plan.maintenance_info.version;
  });
  after(async () => {
    await h?.close();
  });

  async function readyInstance(): Promise<string> {
    const id = uniqueId('upd');
    assert.equal((await h.provision(id)).status, 202);
    await h.markReady(id);
    return id;
  }

  it('answers an identical PATCH re-sent while that update runs with 202 and the same operation (MUST)', async () => {
    const id = await readyInstance();
    const body = { service_id: postgresServiceId, parameters: { local_io: 'batched' } };
    const first = await h.call('PATCH', asyncPath(id), { body });
    assert.equal(first.status, 202, first.text);
    const { operation } = first.body as { operation: string };
    for (const again of [body, { ...body, context: { platform: 'cloudfoundry' }, plan_id: undefined }]) {
      const res = await h.call('PATCH', asyncPath(id), { body: again });
      assert.equal(res.status, 202, 'MUST be 202, not 200, while the update has not completed');
      assert.deepEqual(res.body, { operation });
    }
    const fetched = await h.call('GET', path(id));
    assert.equal(fetched.status, 422, 'an instance being updated cannot be fetched (MUST)');
    assertOsbError(fetched.body, 'ConcurrencyError');

    const before = await h.dump();
    const other = await h.call('PATCH', asyncPath(id), {
      body: { service_id: postgresServiceId, parameters: { local_io: 'unsafe' } },
    });
    assert.equal(other.status, 422, 'a different update waits for this one');
    assertOsbError(other.body, 'ConcurrencyError');
    assert.equal((other.body as { update_repeatable?: boolean }).update_repeatable, true, 'it may pass later');
    assert.equal(await h.dump(), before);

    await h.markReady(id); // what the controller does once every replica applied it
    const done = await h.call('PATCH', asyncPath(id), { body });
    assert.equal(done.status, 200, 'the same request has no effect any more: 200');
    assert.deepEqual(done.body, {});
  });

  it('does not change the parameters when the request has none (MUST NOT)', async () => {
    const id = await readyInstance();
    const before = await h.readInstance(id);
    const res = await h.call('PATCH', asyncPath(id), {
      body: { service_id: postgresServiceId, plan_id: smallPlanId, context: { instance_name: 'renamed' } },
    });
    assert.equal(res.status, 200);
    assert.deepEqual(await h.readInstance(id), before);
  });

  it('refuses a maintenance_info.version other than the plan’s with 422 MaintenanceInfoConflict (MUST)', async () => {
    const id = await readyInstance();
    const before = await h.dump();
    for (const body of [
      { service_id: postgresServiceId, maintenance_info: { version: '0.0.1' } },
      { service_id: postgresServiceId, parameters: { local_io: 'batched' }, maintenance_info: { version: '0.0.1' } },
      { service_id: postgresServiceId, plan_id: haSmallPlanId, maintenance_info: { version: '0.0.1' } },
    ]) {
      const res = await h.call('PATCH', asyncPath(id), { body });
      assert.equal(res.status, 422, res.text);
      assertOsbError(res.body, 'MaintenanceInfoConflict');
    }
    assert.equal(await h.dump(), before);
    const same = await h.call('PATCH', asyncPath(id), {
      body: { service_id: postgresServiceId, maintenance_info: { version } },
    });
    assert.equal(same.status, 200, 'the version it already runs: nothing to do');
  });

  it('says in a refused update’s error whether the instance is usable and the update repeatable, to 2.16+', async () => {
    const id = await readyInstance();
    const body = { service_id: postgresServiceId, maintenance_info: { version: '99.0.0' } };
    const v16 = await h.call('PATCH', asyncPath(id), { body, apiVersion: '2.16' });
    assert.equal(v16.status, 422);
    assertOsbError(v16.body, 'MaintenanceInfoConflict');
    assert.equal((v16.body as { instance_usable: boolean }).instance_usable, true);
    assert.equal((v16.body as { update_repeatable: boolean }).update_repeatable, false, 'SHOULD NOT be retried');
    const v15 = await h.call('PATCH', asyncPath(id), { body, apiVersion: '2.15' });
    assert.equal(v15.status, 422);
    assert.ok(!('instance_usable' in (v15.body as object)) && !('update_repeatable' in (v15.body as object)));
    const provisionError = await h.call('PUT', asyncPath(uniqueId('p')), {
      body: provisionBody({ maintenance_info: { version: '0.0.1' } }),
      apiVersion: '2.16',
    });
    assert.equal(provisionError.status, 422);
    assert.ok(!('instance_usable' in (provisionError.body as object)), 'MUST NOT be present for other operations');
  });

  it('refuses any update of an instance whose provision failed: 422, instance not usable', async () => {
    const id = uniqueId('broken');
    assert.equal((await h.provision(id)).status, 202);
    const record = (await h.readInstance(id)) as InstanceRecord;
    // What the controller writes when a provision fails.
    const failed: InstanceRecord = {
      ...record,
      phase: 'failed',
      message: 'replica 0 failed: image not found',
      operation: { ...record.operation, state: 'failed', description: 'replica 0 failed: image not found' },
    };
    await h.client.put(h.keys.instance(id)).value(json(failed)).exec();
    const res = await h.call('PATCH', asyncPath(id), {
      body: { service_id: postgresServiceId, parameters: { local_io: 'batched' } },
    });
    assert.equal(res.status, 422, res.text);
    assertOsbError(res.body, 'InstanceFailed');
    assert.equal((res.body as { instance_usable: boolean }).instance_usable, false);
  });

  it('answers 404 for an unknown instance and 400 for a service_id that is not the instance’s', async () => {
    const missing = await h.call('PATCH', asyncPath(uniqueId('none')), { body: { service_id: postgresServiceId } });
    assert.equal(missing.status, 404);
    const id = await readyInstance();
    const wrong = await h.call('PATCH', asyncPath(id), { body: { service_id: 'another-service' } });
    assert.equal(wrong.status, 400);
    const noService = await h.call('PATCH', asyncPath(id), { body: { parameters: {} } });
    assert.equal(noService.status, 400, 'service_id is REQUIRED');
  });
});
