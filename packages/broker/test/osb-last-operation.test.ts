import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type InstanceRecord, json, type OperationRecord, tombstoneTtlSeconds } from '@service-foundry/core';
import { uniqueId } from '@service-foundry/test-support';
import { assertOsbError, postgresServiceId, smallPlanId } from '@service-foundry/test-support/broker-calls';
import { type Harness, startHarness } from './helpers.js';

const path = (id: string) => `/v2/service_instances/${id}`;
const poll = (id: string, query = '') => `${path(id)}/last_operation${query}`;
const deletePath = (id: string) =>
  `${path(id)}?accepts_incomplete=true&service_id=${postgresServiceId}&plan_id=${smallPlanId}`;

/** OSB v2.17 "Polling Last Operation for Service Instances" (and for bindings). */
describe('OSB: polling last_operation', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(async () => {
    await h?.close();
  });

  /** Rewrites the instance's operation the way the controller ends one. */
  async function endOperation(id: string, change: Partial<OperationRecord>, phase?: InstanceRecord['phase']) {
    const record = (await h.readInstance(id)) as InstanceRecord;
    const next: InstanceRecord = {
      ...record,
      ...(phase ? { phase } : {}),
      operation: { ...record.operation, ...change },
    };
    await h.client.put(h.keys.instance(id)).value(json(next)).exec();
  }

  it('answers 404 for an instance id that never existed (MUST), with or without an operation', async () => {
    for (const query of ['', '?operation=provision-0123456789abcdef', '?operation=deprovision-0123456789abcdef']) {
      const res = await h.call('GET', poll(uniqueId('never'), query));
      assert.equal(res.status, 404, query);
      assertOsbError(res.body, 'NotFound');
    }
  });

  it('answers 410 once a deprovision deleted the instance: a tombstone under a 7-day lease', async () => {
    const id = uniqueId('gone');
    assert.equal((await h.provision(id)).status, 202);
    await h.markReady(id);
    const deleting = await h.call('DELETE', deletePath(id));
    assert.equal(deleting.status, 202);
    const { operation } = deleting.body as { operation: string };
    const inProgress = await h.call('GET', poll(id, `?operation=${operation}`));
    assert.equal(inProgress.status, 200);
    assert.equal((inProgress.body as { state: string }).state, 'in progress');
    await h.deleteLikeController(id);
    for (const query of [`?operation=${operation}`, '', `?service_id=${postgresServiceId}&plan_id=${smallPlanId}`]) {
      const gone = await h.call('GET', poll(id, query));
      assert.equal(gone.status, 410, query);
      assert.deepEqual(gone.body, {});
    }
    const wrongHint = await h.call('GET', poll(id, '?service_id=another'));
    assert.equal(wrongHint.status, 400);
    const stored = await h.client.get(h.keys.tombstone(id)).exec();
    const lease = stored.kvs[0]?.lease;
    assert.ok(lease && lease !== '0', 'the tombstone lives under a lease');
    const ttl = await h.client.leaseClient.leaseTimeToLive({ ID: lease });
    assert.equal(Number(ttl.grantedTTL), tombstoneTtlSeconds);
    assert.equal(tombstoneTtlSeconds, 7 * 24 * 3600);
  });

  it('reports state and a non-empty description, with Retry-After while in progress to 2.15+ platforms', async () => {
    const id = uniqueId('poll');
    const created = await h.provision(id);
    const { operation } = created.body as { operation: string };
    const running = await h.call('GET', poll(id, `?operation=${operation}&service_id=${postgresServiceId}`));
    assert.equal(running.status, 200);
    const body = running.body as { state: string; description: string };
    assert.equal(body.state, 'in progress');
    assert.ok(body.description.length > 0);
    assert.equal(running.headers.get('retry-after'), '2', 'a duration, not a timestamp (RECOMMENDED)');
    const old = await h.call('GET', poll(id), { apiVersion: '2.14' });
    assert.equal(old.status, 200);
    assert.equal(old.headers.get('retry-after'), null, 'Retry-After is 2.15');
    await endOperation(id, { state: 'succeeded', description: '' }, 'ready');
    const done = await h.call('GET', poll(id));
    assert.deepEqual(done.body, { state: 'succeeded', description: 'succeeded' }, 'never an empty description');
    assert.equal(done.headers.get('retry-after'), null);
    const again = await h.call('GET', poll(id));
    assert.deepEqual(again.body, done.body, 'the state is not forgotten after it was reported (SHOULD NOT)');
  });

  it('refuses malformed polls with 400: an empty operation, hints that name another service or plan', async () => {
    const id = uniqueId('bad');
    assert.equal((await h.provision(id)).status, 202);
    for (const query of ['?operation=', '?service_id=other', '?plan_id=other', '?plan_id=']) {
      const res = await h.call('GET', poll(id, query));
      assert.equal(res.status, 400, query);
      assertOsbError(res.body, 'BadRequest');
    }
  });

  it('says whether a failed update left the instance usable and the update repeatable — to 2.16+ only', async () => {
    const id = uniqueId('fail');
    assert.equal((await h.provision(id)).status, 202);
    await h.markReady(id);
    const update = await h.call('PATCH', `${path(id)}?accepts_incomplete=true`, {
      body: { service_id: postgresServiceId, parameters: { local_io: 'batched' } },
    });
    assert.equal(update.status, 202);
    await endOperation(id, { state: 'failed', description: 'a replica refused the setting', updateRepeatable: false });
    const v16 = await h.call('GET', poll(id), { apiVersion: '2.16' });
    assert.deepEqual(v16.body, {
      state: 'failed',
      description: 'a replica refused the setting',
      instance_usable: true,
      update_repeatable: false,
    });
    const v15 = await h.call('GET', poll(id), { apiVersion: '2.15' });
    assert.deepEqual(v15.body, { state: 'failed', description: 'a replica refused the setting' });
  });

  it('never sends instance_usable for a failed provision (MUST NOT), only for updates and deprovisions', async () => {
    const id = uniqueId('pfail');
    assert.equal((await h.provision(id)).status, 202);
    await endOperation(id, { state: 'failed', description: 'no node has room' }, 'failed');
    const provision = await h.call('GET', poll(id));
    assert.deepEqual(provision.body, { state: 'failed', description: 'no node has room' });
    const deleting = await h.call('DELETE', deletePath(id));
    assert.equal(deleting.status, 202, 'orphan mitigation: a failed provision can be deprovisioned');
    await endOperation(id, { state: 'failed', description: 'agent unreachable', instanceUsable: false });
    const deprovision = await h.call('GET', poll(id));
    assert.deepEqual(deprovision.body, { state: 'failed', description: 'agent unreachable', instance_usable: false });
  });

  it('reports a deprovision that interrupted a provision: polling the provision shows the deprovision', async () => {
    const id = uniqueId('halt');
    const created = await h.provision(id);
    const provisionOperation = (created.body as { operation: string }).operation;
    const deleting = await h.call('DELETE', deletePath(id));
    assert.equal(deleting.status, 202, 'a provision in progress may be deleted (halts it)');
    const polled = await h.call('GET', poll(id, `?operation=${provisionOperation}`));
    assert.equal(polled.status, 200);
    assert.match((polled.body as { description: string }).description, /deprovisioning/);
  });

  it('answers a binding poll: a binding made synchronously is succeeded, an absent one 404', async () => {
    const id = uniqueId('bpoll');
    assert.equal((await h.provision(id)).status, 202);
    const absent = await h.call('GET', `${path(id)}/service_bindings/${uniqueId('b')}/last_operation`);
    assert.equal(absent.status, 404);
    assertOsbError(absent.body, 'NotFound');
    const noInstance = await h.call('GET', `${path(uniqueId('x'))}/service_bindings/b/last_operation`);
    assert.equal(noInstance.status, 404);
  });
});
