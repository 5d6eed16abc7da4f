import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import {
  type AssignmentRecord,
  type Etcd3,
  eventCodec,
  type Keyspace,
  readPrefix,
  readRecord,
  statusCodec,
  waitFor,
} from '@service-foundry/core';
import { startTestEtcd, type TestEtcd, uniqueId, uniqueKeyspace } from '@service-foundry/test-support';
import { containerState, docker, removeClusterResources, volumeExists } from '@service-foundry/test-support/docker';
import { replicaResourceName } from '../src/index.js';
import { ensureTestImage, putSecret, startTestAgent, type TestService, writeTestCatalog } from './helpers.js';

describe('containers the agent finds on its node', () => {
  let etcd: TestEtcd;
  let client: Etcd3;
  let image: string;
  let service: TestService;

  before(async () => {
    etcd = await startTestEtcd();
    client = etcd.client;
    image = await ensureTestImage();
    service = await writeTestCatalog(image);
  });
  after(async () => {
    await etcd.stop();
    await rm(service.catalogDir, { recursive: true, force: true });
  });

  const startNodeAgent = (keys: Keyspace, node: string, clusterId: string) =>
    startTestAgent(etcd.endpoint, keys, { node, reconcileIntervalMs: 300, catalogDir: service.catalogDir, clusterId });

  test('a container labelled for this node without an assignment is stopped, its volume kept', async (t) => {
    const keys = uniqueKeyspace();
    const node = uniqueId('orph');
    const clusterId = uniqueId('cl');
    t.after(() => removeClusterResources(clusterId));
    const replica = { instanceId: uniqueId('lost'), ordinal: 1 };
    const name = replicaResourceName(node, replica);
    const labels = {
      'sf.cluster': clusterId,
      'sf.node': node,
      'sf.instance': replica.instanceId,
      'sf.ordinal': '1',
      'sf.service': service.name,
    };
    await docker.createVolume({ Name: name, Labels: labels });
    const orphan = await docker.createContainer({
      name,
      Image: image,
      Labels: labels,
      HostConfig: { Mounts: [{ Type: 'volume', Source: name, Target: service.volumePath }] },
    });
    await orphan.start();
    // A container of another node on the same Docker Engine must be left alone.
    const neighbour = await docker.createContainer({
      name: replicaResourceName(`${node}-other`, replica),
      Image: image,
      Labels: { ...labels, 'sf.node': `${node}-other` },
    });
    await neighbour.start();

    const agent = await startNodeAgent(keys, node, clusterId);
    // After hooks run in registration order: stop the agent, then clean up again, or it
    // could recreate what the earlier clean-up removed.
    t.after(async () => {
      await agent.stop();
      await removeClusterResources(clusterId);
    });

    await waitFor(async () => (await orphan.inspect()).State.Running === false, {
      description: 'orphan container stopped',
      timeoutMs: 20_000,
    });
    assert.equal(await volumeExists(name), true, 'the orphan keeps its volume');
    assert.ok(await containerState(name), 'the orphan container is stopped, not removed');
    assert.equal((await neighbour.inspect()).State.Running, true, "another node's container keeps running");
    const events = await waitFor(
      async () => {
        const all = await readPrefix(client, eventCodec, keys.events());
        const found = [...all.items.values()].filter((e) => e.value.kind === 'orphan-container-stopped');
        return found.length > 0 ? found : undefined;
      },
      { description: 'an orphan-container-stopped event' },
    );
    assert.equal(events[0]?.value.instanceId, replica.instanceId);
    assert.match(events[0]?.value.message ?? '', /kept its volume/);
  });

  test('a restarted agent adopts the running container instead of replacing it', async (t) => {
    const keys = uniqueKeyspace();
    const node = uniqueId('adopt');
    const clusterId = uniqueId('cl');
    t.after(() => removeClusterResources(clusterId));
    const instanceId = uniqueId('inst');
    const assignment: AssignmentRecord = {
      instanceId,
      ordinal: 0,
      serviceName: service.name,
      planName: 'tiny',
      resources: { cpuMillis: 100, memoryMb: 32, diskMb: 8 },
      desired: 'running',
    };
    await putSecret(client, keys, instanceId, { adminUser: 'a', adminPassword: 'pw' });
    await client
      .put(keys.assignment(node, instanceId, 0))
      .value(JSON.stringify(assignment))
      .exec();
    const runningStatus = async () => {
      const status = await readRecord(client, statusCodec, keys.status(instanceId, 0));
      return status?.value.state === 'running' ? status : undefined;
    };

    const first = await startNodeAgent(keys, node, clusterId);
    const before = await waitFor(runningStatus, { description: 'running under the first agent', timeoutMs: 30_000 });
    await first.stop();
    assert.equal(
      await readRecord(client, statusCodec, keys.status(instanceId, 0)),
      undefined,
      'status went with the lease',
    );
    const name = replicaResourceName(node, { instanceId, ordinal: 0 });
    const untouched = await containerState(name);
    assert.equal(untouched?.State.Running, true, 'stop() leaves containers running');

    const second = await startNodeAgent(keys, node, clusterId);
    // After hooks run in registration order: stop the agent, then clean up again, or it
    // could recreate what the earlier clean-up removed.
    t.after(async () => {
      await second.stop();
      await removeClusterResources(clusterId);
    });
    const after = await waitFor(runningStatus, { description: 'running under the second agent', timeoutMs: 30_000 });
    assert.equal(after.value.containerId, before.value.containerId, 'same container');
    assert.equal(after.value.port, before.value.port, 'same published port');
    const adopted = await containerState(name);
    assert.equal(adopted?.State.StartedAt, untouched?.State.StartedAt, 'not restarted');
  });
});
