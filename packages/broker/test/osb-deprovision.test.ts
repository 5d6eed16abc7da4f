import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { uniqueId } from '@service-foundry/test-support';
import { assertOsbError, postgresServiceId, smallPlanId } from '@service-foundry/test-support/broker-calls';
import { type Harness, startHarness } from './helpers.js';

const path = (id: string) => `/v2/service_instances/${id}`;
const ids = `service_id=${postgresServiceId}&plan_id=${smallPlanId}`;

/** OSB v2.17 "Deprovisioning" (and the orphan mitigation it serves). */
describe('OSB: deprovisioning', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(async () => {
    await h?.close();
  });

  it('answers 410 Gone for an instance that does not exist, asynchronous or not (MUST)', async () => {
    for (const query of [`?${ids}`, `?accepts_incomplete=true&${ids}`]) {
      const res = await h.call('DELETE', `${path(uniqueId('none'))}${query}`);
      assert.equal(res.status, 410, query);
      assert.deepEqual(res.body, {});
    }
  });

  it('deprovisions asynchronously: 202 with an operation; a re-sent DELETE gets 202 and the same operation (MUST)', async () => {
    const id = uniqueId('del');
    assert.equal((await h.provision(id)).status, 202);
    await h.markReady(id);
    const first = await h.call('DELETE', `${path(id)}?accepts_incomplete=true&${ids}`);
    assert.equal(first.status, 202);
    const { operation } = first.body as { operation: string };
    assert.ok(operation.length > 0 && operation.length <= 10_000);
    const again = await h.call('DELETE', `${path(id)}?accepts_incomplete=true&${ids}`);
    assert.equal(again.status, 202, 'MUST be 202, not 200, while not complete');
    assert.deepEqual(again.body, { operation });
    await h.deleteLikeController(id);
    const gone = await h.call('DELETE', `${path(id)}?accepts_incomplete=true&${ids}`);
    assert.equal(gone.status, 410);
  });

  it('answers 422 AsyncRequired without accepts_incomplete=true, changing nothing (MUST)', async () => {
    const id = uniqueId('sync');
    assert.equal((await h.provision(id)).status, 202);
    await h.markReady(id);
    const before = await h.dump();
    for (const query of [`?${ids}`, `?accepts_incomplete=false&${ids}`]) {
      const res = await h.call('DELETE', `${path(id)}${query}`);
      assert.equal(res.status, 422, query);
      assertOsbError(res.body, 'AsyncRequired');
    }
    assert.equal(await h.dump(), before);
  });

  it('requires service_id and plan_id, and refuses ones that are not the instance’s: 400, changing nothing', async () => {
    const id = uniqueId('ids');
    assert.equal((await h.provision(id)).status, 202);
    const before = await h.dump();
    for (const query of [
      `?accepts_incomplete=true&service_id=${postgresServiceId}`,
      `?accepts_incomplete=true&plan_id=${smallPlanId}`,
      `?accepts_incomplete=true&service_id=${postgresServiceId}&plan_id=other-plan`,
      `?service_id=other&plan_id=${smallPlanId}`,
    ]) {
      const res = await h.call('DELETE', `${path(id)}${query}`);
      assert.equal(res.status, 400, query);
      assertOsbError(res.body, 'BadRequest');
    }
    assert.equal(await h.dump(), before);
  });

  it('accepts a deprovision while provisioning (halting it) and for a failed provision (orphan mitigation)', async () => {
    const id = uniqueId('early');
    assert.equal((await h.provision(id)).status, 202);
    const res = await h.call('DELETE', `${path(id)}?accepts_incomplete=true&${ids}`);
    assert.equal(res.status, 202);
    const record = await h.readInstance(id);
    assert.equal(record?.phase, 'deprovisioning');
    assert.equal(record?.operation.type, 'deprovision');
  });
});
