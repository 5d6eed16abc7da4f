import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  assignmentCodec,
  json,
  metricFamilies,
  placementCodec,
  primaryCodec,
  type ReplicaStatus,
  readPrefix,
  readRecord,
  sampleValue,
  scrapeMetrics,
  waitFor,
} from '@service-foundry/core';
import { silentLogger, startTestEtcd, type TestEtcd } from '@service-foundry/test-support';
import { type RunningScheduler, startScheduler } from '../src/index.js';
import { instanceRecord, registerNode, schedulerConfig } from './helpers.js';

const size = { cpuMillis: 500, memoryMb: 512, diskMb: 1024 };
const nodeSize = { cpuMillis: 2000, memoryMb: 2048, diskMb: 4096 };

/**
 * Real etcd and a real scheduler + controller; the agents' part (node records under
 * leases, replica statuses) is written by the test, as in controller.test.ts.
 */
describe('scheduler and controller metrics', () => {
  let f: TestEtcd;
  let scheduler: RunningScheduler;
  const leases = new Map<string, string>();
  const scrape = async () => (await scrapeMetrics(scheduler.metricsUrl as string)).samples;

  before(async () => {
    f = await startTestEtcd();
    for (const [name, zone] of [
      ['node-a', 'z1'],
      ['node-b', 'z2'],
    ] as const) {
      leases.set(name, await registerNode(f, name, nodeSize, 30, { zone }));
    }
    scheduler = await startScheduler(schedulerConfig(f, { intervalMs: 100, name: 'ctl', metrics: { port: 0 } }), {
      log: silentLogger(),
    });
  });
  after(async () => {
    await scheduler?.stop();
    await f?.stop();
  });

  /** What an agent writes once its container answers. */
  const report = async (
    ordinal: number,
    node: string,
    role: 'primary' | 'replica',
    epoch: number,
    position: string,
  ) => {
    const status: ReplicaStatus = {
      instanceId: 'pg-m',
      ordinal,
      node,
      state: 'running',
      host: '127.0.0.9',
      port: 5550 + ordinal,
      message: 'ready',
      updatedAt: new Date().toISOString(),
      role,
      epoch,
      peer: { host: '127.0.0.9', port: 5550 + ordinal },
      position,
      positionAt: new Date().toISOString(),
    };
    await f.client
      .put(f.keys.status('pg-m', ordinal))
      .value(json(status))
      .lease(leases.get(node) as string)
      .exec();
  };

  it('counts placements with their latency, a pending replica by reason, and the leader', async () => {
    const record = {
      ...instanceRecord('pg-m', 2, size, 40100),
      planName: 'ha-small',
      io: { durability: 'async' as const, localIo: 'fsync' as const },
      failover: { fencing: 'best-effort' as const, fencingTimeoutSeconds: 2, maxLagBytes: 1_000_000 },
    };
    await f.client.put(f.keys.instance('pg-m')).value(json(record)).exec();
    // No node has 64 CPUs: pending for want of room.
    const huge = instanceRecord('pg-huge', 1, { cpuMillis: 64_000, memoryMb: 512, diskMb: 1024 }, 40101);
    await f.client.put(f.keys.instance('pg-huge')).value(json(huge)).exec();

    await waitFor(
      async () => (await readPrefix(f.client, placementCodec, f.keys.instancePlacements('pg-m'))).items.size === 2,
      {
        description: 'both replicas of pg-m placed',
      },
    );
    await waitFor(
      async () => sampleValue(await scrape(), 'sf_scheduler_pending_replicas', { reason: 'no_room' }) === 1,
      {
        description: 'pg-huge pending for room',
      },
    );
    const samples = await scrape();
    assert.equal(sampleValue(samples, 'sf_scheduler_placements_total', { kind: 'first' }), 2);
    assert.equal(sampleValue(samples, 'sf_scheduler_placement_latency_seconds_count'), 2);
    assert.equal(sampleValue(samples, 'sf_scheduler_leader'), 1);
    assert.equal(sampleValue(samples, 'sf_controller_nodes_ready', { node: 'node-a' }), 1);
  });

  it('reports replica lag, then a lost primary, a failed fencing attempt and the failover with its duration', async () => {
    const placements = (await readPrefix(f.client, placementCodec, f.keys.instancePlacements('pg-m'))).items;
    const nodeOf = (ordinal: number) =>
      [...placements.values()].find((p) => p.value.ordinal === ordinal)?.value.node as string;
    // The bootstrap primary (ordinal 0) answers; the controller elects it.
    await waitFor(
      async () =>
        (await readRecord(f.client, assignmentCodec, f.keys.assignment(nodeOf(0), 'pg-m', 0)))?.value.role ===
        'primary',
      { description: 'ordinal 0 named bootstrap primary' },
    );
    await report(0, nodeOf(0), 'primary', 0, '1000');
    const primary = await waitFor(() => readRecord(f.client, primaryCodec, f.keys.primary('pg-m')), {
      description: 'primary elected',
    });
    const epoch = Number(primary.modRevision);
    await report(0, nodeOf(0), 'primary', epoch, '1000');
    await report(1, nodeOf(1), 'replica', epoch, '400');
    await waitFor(
      async () =>
        sampleValue(await scrape(), 'sf_controller_replica_lag_bytes', {
          instance: 'pg-m',
          ordinal: '1',
          node: nodeOf(1),
        }) === 600,
      { description: 'lag of ordinal 1 is 600 bytes' },
    );

    // The primary's node stops renewing its lease. No fence device is configured: fencing
    // fails, and the best-effort policy promotes the standby after its 2 s timeout.
    const lost = nodeOf(0);
    await f.client.leaseClient.leaseRevoke({ ID: leases.get(lost) as string });
    await waitFor(
      async () => {
        // The standby keeps reporting fresh positions, as its agent does every 250 ms.
        await report(1, nodeOf(1), 'replica', epoch, '1000');
        const now = await readRecord(f.client, primaryCodec, f.keys.primary('pg-m'));
        return now?.value.ordinal === 1;
      },
      { description: 'ordinal 1 promoted', timeoutMs: 30_000, intervalMs: 200 },
    );
    const text = (await scrapeMetrics(scheduler.metricsUrl as string)).text;
    const samples = await scrape();
    assert.equal(sampleValue(samples, 'sf_controller_primary_lost_total'), 1);
    assert.equal(sampleValue(samples, 'sf_controller_failovers_total'), 1);
    assert.equal(sampleValue(samples, 'sf_controller_failover_duration_seconds_count'), 1);
    const seconds = sampleValue(samples, 'sf_controller_failover_duration_seconds_sum') as number;
    assert.ok(seconds >= 2 && seconds < 30, `failover took ${seconds} s, at least the 2 s fencing timeout`);
    assert.ok(
      (sampleValue(samples, 'sf_controller_fencing_attempts_total', { level: 'none', result: 'failure' }) ?? 0) >= 1,
    );
    assert.equal(sampleValue(samples, 'sf_controller_nodes_ready', { node: lost }), 0);
    assert.ok((sampleValue(samples, 'sf_events_total', { kind: 'failover-promote' }) ?? 0) >= 1);
    for (const family of [
      'sf_scheduler_pending_replicas',
      'sf_controller_fencing_attempts_total',
      'process_cpu_seconds_total',
    ]) {
      assert.ok(metricFamilies(text).has(family), family);
    }
  });
});
