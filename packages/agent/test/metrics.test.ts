import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import {
  type AssignmentRecord,
  metricFamilies,
  readRecord,
  sampleValue,
  scrapeMetrics,
  statusCodec,
  waitFor,
} from '@service-foundry/core';
import { startTestEtcd, type TestEtcd, uniqueId, uniqueKeyspace } from '@service-foundry/test-support';
import { docker, removeClusterResources } from '@service-foundry/test-support/docker';
import { ensureTestImage, putSecret, startTestAgent, type TestService, writeTestCatalog } from './helpers.js';

/** A real agent on real Docker (the busybox service of lifecycle.test.ts) and a real etcd. */
describe('agent metrics', () => {
  let etcd: TestEtcd;
  let service: TestService;

  before(async () => {
    etcd = await startTestEtcd();
    service = await writeTestCatalog(await ensureTestImage());
  });
  after(async () => {
    await etcd?.stop();
    if (service) await rm(service.catalogDir, { recursive: true, force: true });
  });

  test('per-replica state and restarts, lease renewal age and self-fence state, after a crash', async (t) => {
    const keys = uniqueKeyspace();
    const node = uniqueId('metrics');
    const clusterId = uniqueId('cl');
    const instanceId = uniqueId('inst');
    const agent = await startTestAgent(etcd.endpoint, keys, {
      node,
      reconcileIntervalMs: 500,
      catalogDir: service.catalogDir,
      clusterId,
      metrics: { port: 0 },
    });
    t.after(async () => {
      await agent.stop();
      await removeClusterResources(clusterId);
    });
    const url = agent.metricsUrl as string;
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    const scrape = async () => (await scrapeMetrics(url)).samples;
    const replica = { instance: instanceId, ordinal: '0' };

    await putSecret(etcd.client, keys, instanceId, {
      adminUser: 'admin',
      adminPassword: 'correct horse battery staple',
    });
    const assignment: AssignmentRecord = {
      instanceId,
      ordinal: 0,
      serviceName: service.name,
      planName: 'tiny',
      resources: { cpuMillis: 250, memoryMb: 64, diskMb: 16 },
      desired: 'running',
    };
    await etcd.client
      .put(keys.assignment(node, instanceId, 0))
      .value(JSON.stringify(assignment))
      .exec();
    const running = await waitFor(
      async () => {
        const status = await readRecord(etcd.client, statusCodec, keys.status(instanceId, 0));
        return status?.value.state === 'running' ? status.value : undefined;
      },
      { description: 'replica running', timeoutMs: 60_000 },
    );
    let samples = await scrape();
    assert.equal(sampleValue(samples, 'sf_agent_replica_state', { ...replica, state: 'running' }), 1);
    assert.equal(sampleValue(samples, 'sf_agent_self_fenced'), 0);
    const age = sampleValue(samples, 'sf_agent_lease_renewal_age_seconds') as number;
    assert.ok(age >= 0 && age < 10, `lease renewed ${age} s ago`);

    // A crash, then the agent starts the container again: one restart.
    await docker.getContainer(running.containerId as string).kill();
    await waitFor(async () => sampleValue(await scrape(), 'sf_agent_replica_restarts_total', replica) === 1, {
      description: 'the restart counted',
      timeoutMs: 45_000,
    });
    await waitFor(
      async () => sampleValue(await scrape(), 'sf_agent_replica_state', { ...replica, state: 'running' }) === 1,
      { description: 'running again', timeoutMs: 45_000 },
    );
    samples = await scrape();
    assert.equal(sampleValue(samples, 'sf_agent_replica_state', { ...replica, state: 'failed' }), undefined);
    assert.ok((sampleValue(samples, 'sf_events_total', { kind: 'replica-failed' }) ?? 0) >= 1);

    const { text } = await scrapeMetrics(url);
    for (const family of [
      'sf_agent_replica_role',
      'sf_agent_replica_epoch',
      'sf_agent_replica_position_bytes',
      'sf_agent_replica_position_age_seconds',
      'sf_agent_self_fence_events_total',
      'sf_agent_transfer_bytes_total',
      'sf_agent_transfer_wire_bytes_total',
    ]) {
      assert.ok(metricFamilies(text).has(family), family);
    }
  });
});
