import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  type AssignmentRecord,
  type Etcd3,
  eventCodec,
  nodeCodec,
  readPrefix,
  readRecord,
  statusCodec,
  waitFor,
} from '@service-foundry/core';
import { startTestEtcd, type TestEtcd, uniqueId, uniqueKeyspace } from '@service-foundry/test-support';
import { removeClusterResources } from '@service-foundry/test-support/docker';
import { startAgentProcess } from './agent-process.js';
import { startTestAgent } from './helpers.js';

describe('node registration', () => {
  let etcd: TestEtcd;
  let client: Etcd3;

  before(async () => {
    etcd = await startTestEtcd();
    client = etcd.client;
  });
  after(async () => {
    await etcd.stop();
  });

  test('the node key lives under a lease with the configured TTL and vanishes on stop()', async () => {
    const keys = uniqueKeyspace();
    const node = uniqueId('reg');
    const agent = await startTestAgent(etcd.endpoint, keys, {
      node,
      address: '127.0.0.7',
      capacity: { cpuMillis: 2000 },
      labels: { zone: 'a' },
      leaseTtlSeconds: 5,
      clusterId: uniqueId('cl'),
    });
    try {
      assert.equal(agent.node, node);
      const record = await readRecord(client, nodeCodec, keys.node(node));
      assert.ok(record, 'node key exists after start');
      assert.equal(record.value.name, node);
      assert.equal(record.value.address, '127.0.0.7');
      assert.deepEqual(record.value.capacity, { cpuMillis: 2000, memoryMb: 8192, diskMb: 51200 });
      assert.deepEqual(record.value.labels, { zone: 'a' });
      assert.ok(!Number.isNaN(Date.parse(record.value.startedAt)));
      assert.notEqual(record.lease, '0', 'node key is attached to a lease');
      const ttl = await client.leaseClient.leaseTimeToLive({ ID: record.lease });
      assert.equal(Number(ttl.grantedTTL), 5);
      assert.ok(Date.now() - agent.lastRenewedAt() < 5000, 'lease renewed recently');
    } finally {
      await agent.stop();
    }
    assert.equal(await readRecord(client, nodeCodec, keys.node(node)), undefined, 'node key gone right after stop()');
  });

  test('a revoked lease is replaced: node and replica statuses come back under the new lease', async (t) => {
    const keys = uniqueKeyspace();
    const node = uniqueId('reg');
    const clusterId = uniqueId('cl');
    const agent = await startTestAgent(etcd.endpoint, keys, {
      node,
      leaseTtlSeconds: 2,
      reconcileIntervalMs: 500,
      clusterId,
    });
    t.after(async () => {
      await agent.stop();
      await removeClusterResources(clusterId);
    });
    // An assignment for a service the catalog lacks: the agent reports it without Docker work.
    const assignment: AssignmentRecord = {
      instanceId: 'inst-1',
      ordinal: 0,
      serviceName: 'no-such-service',
      planName: 'x',
      resources: { cpuMillis: 100, memoryMb: 64, diskMb: 10 },
      desired: 'running',
    };
    await client
      .put(keys.assignment(node, 'inst-1', 0))
      .value(JSON.stringify(assignment))
      .exec();
    const firstStatus = await waitFor(() => readRecord(client, statusCodec, keys.status('inst-1', 0)), {
      description: 'failed status for an unknown service',
    });
    assert.equal(firstStatus.value.state, 'failed');
    assert.match(firstStatus.value.message, /no-such-service is not in the catalog/);

    const before = await readRecord(client, nodeCodec, keys.node(node));
    assert.ok(before);
    assert.equal(firstStatus.lease, before.lease, 'statuses are written under the node lease');
    await client.leaseClient.leaseRevoke({ ID: before.lease });

    const again = await waitFor(
      async () => {
        const current = await readRecord(client, nodeCodec, keys.node(node));
        return current && current.lease !== before.lease ? current : undefined;
      },
      { description: 'node registered again under a new lease', timeoutMs: 10_000 },
    );
    const status = await waitFor(
      async () => {
        const current = await readRecord(client, statusCodec, keys.status('inst-1', 0));
        return current?.lease === again.lease ? current : undefined;
      },
      { description: 'status rewritten under the new lease', timeoutMs: 10_000 },
    );
    assert.equal(status.value.state, 'failed');
    const events = await waitFor(
      async () => {
        const all = await readPrefix(client, eventCodec, keys.events());
        const found = [...all.items.values()].filter((e) => e.value.kind === 'node-lease-lost');
        return found.length > 0 ? found : undefined;
      },
      { description: 'a node-lease-lost event' },
    );
    assert.equal(events[0]?.value.node, node);
  });

  test('a paused agent process loses its node key within the TTL, and registers again when resumed', async (t) => {
    const keys = uniqueKeyspace();
    const node = uniqueId('paused');
    const ttlSeconds = 2;
    const agent = await startAgentProcess(t, etcd.endpoint, keys, { node, leaseTtlSeconds: ttlSeconds });
    const registered = await readRecord(client, nodeCodec, keys.node(node));
    assert.ok(registered, 'node key exists once the agent is ready');

    agent.child.kill('SIGSTOP');
    const pausedAt = Date.now();
    await waitFor(async () => (await readRecord(client, nodeCodec, keys.node(node))) === undefined, {
      description: 'node key to expire while the agent is paused',
      timeoutMs: ttlSeconds * 1000 + 3000,
    });
    const vanishedAfterMs = Date.now() - pausedAt;
    assert.ok(vanishedAfterMs <= ttlSeconds * 1000 + 3000, `vanished after ${vanishedAfterMs} ms`);

    agent.child.kill('SIGCONT');
    const back = await waitFor(() => readRecord(client, nodeCodec, keys.node(node)), {
      description: 'node registered again after the pause',
      timeoutMs: 10_000,
    });
    assert.notEqual(back.lease, registered.lease);

    agent.child.kill('SIGTERM');
    assert.equal((await agent.exited).code, 0, `agent exits 0 on SIGTERM; output: ${agent.output()}`);
    assert.equal(await readRecord(client, nodeCodec, keys.node(node)), undefined, 'lease revoked on a clean stop');
  });
});
