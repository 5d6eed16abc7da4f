import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  type EventRecord,
  json,
  type NodeAllocation,
  nodeControlCodec,
  readRecord,
  type SchedulingStatusRecord,
} from '@service-foundry/core';
import { uniqueId } from '@service-foundry/test-support';
import { assertOsbError, type call, username } from '@service-foundry/test-support/broker-calls';
import type { InstanceDetail, NodeControlView, NodeView } from '../src/index.js';
import { type Harness, startHarness } from './helpers.js';

describe('broker: node controls (cordon, drain, uncordon) and scheduling status', () => {
  let h: Harness;
  const resources = { cpuMillis: 500, memoryMb: 512, diskMb: 1024 };

  before(async () => {
    h = await startHarness();
    const allocation: NodeAllocation = {
      node: 'node-c',
      replicas: {
        'db-b/1': { instanceId: 'db-b', ordinal: 1, resources },
        'db-a/0': { instanceId: 'db-a', ordinal: 0, resources },
      },
    };
    await h.putNode('node-c', { address: '10.0.0.3', labels: { zone: 'z1' } });
    await h.client.put(h.keys.allocation('node-c')).value(json(allocation)).exec();
  });
  after(async () => {
    await h?.close();
  });

  const control = () => readRecord(h.client, nodeControlCodec, h.keys.nodeControl('node-c'));

  it('cordon stops new placements on a node, recorded with who and why', async () => {
    const res = await h.call('POST', '/sf/v1/nodes/node-c/cordon', {
      body: { reason: 'disk replacement' },
      headers: { 'x-sf-operator': 'alice' },
    });
    assert.equal(res.status, 200, res.text);
    const view = res.body as NodeControlView;
    assert.equal(view.message, 'node node-c takes no new replicas; its 2 replicas stay');
    const stored = await control();
    assert.deepEqual(
      {
        cordoned: stored?.value.cordoned,
        draining: stored?.value.draining,
        reason: stored?.value.reason,
        by: stored?.value.by,
      },
      { cordoned: true, draining: false, reason: 'disk replacement', by: 'alice' },
    );
  });

  it('drain also reports what remains on the node; sf nodes shows it', async () => {
    const res = await h.call('POST', '/sf/v1/nodes/node-c/drain', { apiVersion: null });
    assert.equal(res.status, 200, res.text);
    const view = res.body as NodeControlView;
    assert.deepEqual(view.remaining, ['db-a/0', 'db-b/1']);
    assert.match(view.message, /2 replicas remain on it and move once volume relocation is available/);
    assert.equal(view.control.by, username, 'without X-SF-Operator, the operator the request was authenticated as');
    assert.equal(view.control.reason, `drain by ${username}`);
    const nodes = (await h.call('GET', '/sf/v1/nodes')).body as NodeView[];
    const c = nodes.find((n) => n.name === 'node-c');
    assert.equal(c?.control?.cordoned, true);
    assert.equal(c?.control?.draining, true);
    assert.equal(c?.fence, null);
    const events = (await h.call('GET', '/sf/v1/events?limit=10')).body as EventRecord[];
    assert.deepEqual(
      events.filter((e) => e.node === 'node-c').map((e) => e.kind),
      ['node-cordon', 'node-drain'],
    );
  });

  it('uncordon lets the node take replicas again', async () => {
    const res = await h.call('POST', '/sf/v1/nodes/node-c/uncordon', { body: {} });
    assert.equal(res.status, 200, res.text);
    const stored = await control();
    assert.equal(stored?.value.cordoned, false);
    assert.equal(stored?.value.draining, false);
    assert.equal((res.body as NodeControlView).message, 'node node-c takes new replicas again');
  });

  it('rejects bad input and unknown nodes, changing nothing', async () => {
    const before = await h.dump();
    const cases: Array<[string, Parameters<typeof call>[3], number, string]> = [
      ['/sf/v1/nodes/no-such-node/cordon', {}, 404, 'NotFound'],
      ['/sf/v1/nodes/bad%20name/cordon', {}, 400, 'BadRequest'],
      ['/sf/v1/nodes/node-c/cordon', { body: { reason: 'x', force: true } }, 400, 'BadRequest'],
      ['/sf/v1/nodes/node-c/drain', { body: { reason: 'x'.repeat(501) } }, 400, 'BadRequest'],
      ['/sf/v1/nodes/node-c/drain', { body: ['not', 'an', 'object'] }, 400, 'BadRequest'],
      ['/sf/v1/nodes/node-c/cordon', { headers: { 'x-sf-operator': 'two words' } }, 400, 'BadRequest'],
      ['/sf/v1/nodes/node-c/cordon', { auth: null }, 401, 'Unauthorized'],
    ];
    for (const [path, options, status, error] of cases) {
      const res = await h.call('POST', path, options);
      assert.equal(res.status, status, `${path}: ${res.text}`);
      assertOsbError(res.body, error);
    }
    assert.equal(await h.dump(), before, 'no key changed');
  });

  it("shows an instance's scheduling status: why its replicas are pending", async () => {
    const id = uniqueId('pending');
    const put = await h.provision(id, { context: { instance_name: 'pending-db' } });
    assert.equal(put.status, 202);
    const none = (await h.call('GET', `/sf/v1/instances/${id}`)).body as InstanceDetail;
    assert.equal(none.scheduling, null);
    // What the scheduler writes when no node fits.
    const status: SchedulingStatusRecord = {
      instanceId: id,
      desired: 1,
      placed: 0,
      pending: [{ ordinal: 0, reason: 'no node fits (3 nodes: not enough free 4 GiB memory)' }],
      updatedAt: new Date().toISOString(),
    };
    await h.client.put(h.keys.schedulingStatus(id)).value(json(status)).exec();
    const detail = (await h.call('GET', '/sf/v1/instances/pending-db')).body as InstanceDetail;
    assert.deepEqual(detail.scheduling?.pending, status.pending);
    assert.equal(detail.scheduling?.placed, 0);
    assert.equal(detail.scheduling?.desired, 1);
  });
});
