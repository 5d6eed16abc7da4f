import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  type BindingRecord,
  type EventRecord,
  json,
  type NodeAllocation,
  type PlacementRecord,
  type PrimaryRecord,
  type ReplicaStatus,
  type RouteRecord,
  sealedValue,
} from '@service-foundry/core';
import { secretBox, uniqueId } from '@service-foundry/test-support';
import type { InstanceDetail, InstanceSummary, NodeView } from '../src/index.js';
import { type Harness, startHarness } from './helpers.js';

describe('broker: operator API', () => {
  let h: Harness;
  const placedId = uniqueId('placed');
  const waitingId = uniqueId('waiting');
  const resources = { cpuMillis: 500, memoryMb: 512, diskMb: 1024 };

  before(async () => {
    h = await startHarness();
    const put = (id: string, name: string) => h.provision(id, { context: { instance_name: name } });
    assert.equal((await put(placedId, 'placed-db')).status, 202);
    assert.equal((await put(waitingId, 'waiting-db')).status, 202);

    // What the scheduler, an agent and the controller would have written for one replica.
    const { client, keys } = h;
    const instance = await h.readInstance(placedId);
    assert.ok(instance);
    const allocation: NodeAllocation = {
      node: 'node-a',
      replicas: { [`${placedId}/0`]: { instanceId: placedId, ordinal: 0, resources } },
    };
    const placement: PlacementRecord = {
      instanceId: placedId,
      ordinal: 0,
      node: 'node-a',
      placedAt: new Date().toISOString(),
      scheduler: 'test',
    };
    const status: ReplicaStatus = {
      instanceId: placedId,
      ordinal: 0,
      node: 'node-a',
      state: 'running',
      host: '10.0.0.1',
      port: 32768,
      message: 'accepting connections',
      updatedAt: new Date().toISOString(),
    };
    const primary: PrimaryRecord = {
      instanceId: placedId,
      ordinal: 0,
      node: 'node-a',
      host: '10.0.0.1',
      port: 32768,
      electedAt: new Date().toISOString(),
    };
    await h.putNode('node-a', { labels: { zone: 'z1' } });
    await client.put(keys.allocation('node-a')).value(json(allocation)).exec();
    await client.put(keys.placement(placedId, 0)).value(json(placement)).exec();
    await client.put(keys.status(placedId, 0)).value(json(status)).exec();
    const elected = await client.put(keys.primary(placedId)).value(json(primary)).exec();
    const route: RouteRecord = {
      instanceId: placedId,
      protocol: 'tcp',
      port: instance.routerPort,
      target: { host: '10.0.0.1', port: 32768 },
      epoch: Number(elected.header.revision),
    };
    await client.put(keys.route(placedId)).value(json(route)).exec();
    await h.markReady(placedId);
    const binding: BindingRecord = {
      id: 'bind-1',
      instanceId: placedId,
      name: 'orders-app',
      username: 'u_0123456789abcdef',
      password: 'SECRETSECRETSECRETSECRETSECRET12',
      createdAt: new Date().toISOString(),
      context: {},
      parameters: {},
    };
    const bindingKey = keys.binding(placedId, 'bind-1');
    await client
      .put(bindingKey)
      .value(sealedValue(secretBox, bindingKey, binding))
      .exec();
    // An allocation without a node record: an agent whose lease expired.
    await client
      .put(keys.allocation('node-dead'))
      .value(json({ node: 'node-dead', replicas: {} }))
      .exec();
  });
  after(async () => {
    await h?.close();
  });

  it('lists instances with replica counts and routes', async () => {
    const res = await h.call('GET', '/sf/v1/instances', { apiVersion: null });
    assert.equal(res.status, 200);
    const list = res.body as InstanceSummary[];
    const placed = list.find((i) => i.id === placedId);
    const waiting = list.find((i) => i.id === waitingId);
    assert.ok(placed && waiting);
    assert.equal(placed.name, 'placed-db');
    assert.equal(placed.service, 'postgres');
    assert.equal(placed.plan, 'small');
    assert.equal(placed.phase, 'ready');
    assert.deepEqual(placed.replicas, { desired: 1, placed: 1, running: 1 });
    const instance = await h.readInstance(placedId);
    assert.deepEqual(placed.route, { host: '127.0.0.1', hosts: ['127.0.0.1'], port: instance?.routerPort });
    assert.equal(waiting.phase, 'provisioning');
    assert.deepEqual(waiting.replicas, { desired: 1, placed: 0, running: 0 });
    assert.equal(waiting.route, null);
    assert.equal(waiting.operation.state, 'in progress');
  });

  it('shows one instance by id or by name, with replicas, primary epoch and bindings but no passwords', async () => {
    const byId = await h.call('GET', `/sf/v1/instances/${placedId}`);
    assert.equal(byId.status, 200);
    const detail = byId.body as InstanceDetail;
    assert.deepEqual(detail.replicaDetails, [
      {
        ordinal: 0,
        node: 'node-a',
        state: 'running',
        host: '10.0.0.1',
        port: 32768,
        message: 'accepting connections',
        role: null,
        position: null,
        io: null,
      },
    ]);
    const primaryRevision = (await h.client.get(h.keys.primary(placedId)).exec()).kvs[0]?.mod_revision;
    assert.deepEqual(detail.primary, { node: 'node-a', ordinal: 0, epoch: Number(primaryRevision) });
    assert.equal(detail.bindings.length, 1);
    assert.deepEqual(Object.keys(detail.bindings[0] ?? {}).sort(), ['createdAt', 'id', 'name', 'username']);
    assert.ok(!byId.text.includes('SECRETSECRET'), 'binding passwords never leave etcd through the operator API');

    const byName = await h.call('GET', '/sf/v1/instances/waiting-db');
    assert.equal(byName.status, 200);
    const waiting = byName.body as InstanceDetail;
    assert.equal(waiting.id, waitingId);
    assert.deepEqual(
      waiting.replicaDetails.map((r) => [r.ordinal, r.state, r.node]),
      [[0, 'pending', null]],
    );
    assert.equal(waiting.primary, null);
  });

  it('lists nodes with capacity, allocation and replicas, including nodes whose lease expired', async () => {
    const res = await h.call('GET', '/sf/v1/nodes');
    assert.equal(res.status, 200);
    const nodes = res.body as NodeView[];
    const a = nodes.find((n) => n.name === 'node-a');
    assert.ok(a);
    assert.equal(a.alive, true);
    assert.equal(a.address, '10.0.0.1');
    assert.deepEqual(a.labels, { zone: 'z1' });
    assert.deepEqual(a.allocated, resources);
    assert.deepEqual(a.replicas, [{ instanceId: placedId, ordinal: 0, resources, state: 'running' }]);
    const dead = nodes.find((n) => n.name === 'node-dead');
    assert.equal(dead?.alive, false);
    assert.equal(dead?.capacity, null);
  });

  it('lists the newest events, oldest first', async () => {
    const res = await h.call('GET', '/sf/v1/events?limit=50');
    assert.equal(res.status, 200);
    const events = res.body as EventRecord[];
    const ours = events.filter((e) => e.kind === 'instance-provisioning');
    assert.deepEqual(
      ours.map((e) => e.instanceId),
      [placedId, waitingId],
    );
    const sorted = [...events].sort((x, y) => x.at.localeCompare(y.at));
    assert.deepEqual(events, sorted);
    const one = await h.call('GET', '/sf/v1/events?limit=1');
    assert.deepEqual(
      (one.body as EventRecord[]).map((e) => e.instanceId),
      [waitingId],
    );
  });
});
