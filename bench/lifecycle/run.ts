import { cp } from 'node:fs/promises';
import { join } from 'node:path';
import type { SwitchoverRecord } from '@service-foundry/core';
import { instanceCodec, Keyspace, readRecord, waitFor } from '@service-foundry/core';
import { startCluster, type TestCluster } from '@service-foundry/test-support/cluster';
import { pinOlderVersion, rolledOnto, tagOlderImage } from '@service-foundry/test-support/older-version';
import { percentile } from '@service-foundry/test-support/percentile';
import { type Ack, lostWrites, Writer } from '@service-foundry/test-support/writer';

/**
 * Switchovers of a three-replica Postgres (`ha-small`, `remote-fsync`) under a continuous
 * writer through the router: the longest pause between two acknowledged writes around each
 * switchover, and the acknowledged writes lost at the end. A switchover's window runs from
 * 2 s before the order to 2 s after the instance is whole again (the old primary back as a
 * running replica), not only to the end of the controller's switchover: a pause while the
 * old primary rejoins is one the client meets too. The narrower window's figure is printed
 * beside it. Baseline, measured in the same
 * run on the same writer: the longest pause between two writes over a quiet window of the
 * same length with no switchover (what the writer and machine do by themselves).
 *
 * Then rolling upgrades of the same instance: the instance is set back to an "older"
 * version (the catalog's image under a second tag; the controller rolls onto it), and
 * `sf upgrade-service` moves it to the plan's version again. Each roll's window runs from
 * 2 s before the order to 2 s after the last replica runs the image.
 */

interface Detail {
  id: string;
  primary: { node: string; epoch: number } | null;
  replicaDetails: Array<{ ordinal: number; node: string; state: string }>;
}

/** `SWITCHOVERS` (default 10, at least 1). */
const switchovers = Math.max(1, Number(process.env.SWITCHOVERS ?? 10));
/**
 * `SWITCHOVER_TRACE=1`: after each switchover, its events, the writer's pauses and errors
 * on stderr; `SWITCHOVER_TRACE_LOGS=DIR`: the cluster's logs copied to DIR before teardown.
 */
const trace = process.env.SWITCHOVER_TRACE === '1';
const traceLogs = process.env.SWITCHOVER_TRACE_LOGS;
/** `UPGRADES` (default 2): rolls measured, half of them by `sf upgrade-service`. */
const upgrades = Math.max(0, Number(process.env.UPGRADES ?? 2));
/** Acknowledgements looked at on each side of a switchover's window. */
const marginMs = 2000;

/** The longest interval between consecutive acknowledgements within [from, to]. */
function longestPause(acked: readonly Ack[], from: number, to: number): number {
  const inside = acked.filter((a) => a.at >= from && a.at <= to).map((a) => a.at);
  let longest = 0;
  for (let i = 1; i < inside.length; i++)
    longest = Math.max(longest, (inside[i] as number) - (inside[i - 1] as number));
  return longest / 1000;
}

async function sfJson<T>(cluster: TestCluster, ...args: string[]): Promise<T> {
  const result = await cluster.sf(...args, '--json');
  if (result.code !== 0) throw new Error(`sf ${args.join(' ')}: ${result.stderr || result.stdout}`);
  return JSON.parse(result.stdout) as T;
}

/**
 * Rolls the instance `upgrades` times under the running writer, alternating: onto the older
 * tag (the controller's roll, as an upgrade does it), then `sf upgrade-service` back to the
 * plan's version. The longest write gap of each roll, in seconds.
 */
async function measureUpgrades(
  cluster: TestCluster,
  name: string,
  writer: Writer,
  allRunning: () => Promise<unknown>,
): Promise<number[]> {
  if (upgrades === 0) return [];
  const keys = new Keyspace('/sf');
  const etcd = cluster.etcdAsRoot();
  const gaps: number[] = [];
  try {
    const { id } = await sfJson<Detail>(cluster, 'service', name);
    const catalogImage = (await readRecord(etcd, instanceCodec, keys.instance(id)))?.value.image;
    if (!catalogImage) throw new Error(`${name} records no image`);
    const older = await tagOlderImage(catalogImage, `bench-older-${process.pid}`);
    try {
      for (let i = 0; i < upgrades; i++) {
        await allRunning();
        const toOlder = i % 2 === 0;
        const image = toOlder ? older.image : catalogImage;
        const startedAt = Date.now();
        if (toOlder) {
          await pinOlderVersion(etcd, keys, id, older.image, '0.0.1');
        } else {
          const upgraded = await cluster.sf('upgrade-service', name);
          if (upgraded.code !== 0) throw new Error(`sf upgrade-service: ${upgraded.stderr || upgraded.stdout}`);
        }
        await rolledOnto(etcd, keys, id, image, 3);
        const windowEnd = Date.now() + marginMs;
        await waitFor(() => writer.firstAckAfter(windowEnd), {
          description: 'writes after the roll',
          timeoutMs: 120_000,
        });
        const gap = longestPause(writer.acked, startedAt - marginMs, windowEnd);
        gaps.push(gap);
        process.stderr.write(
          `upgrade ${i + 1}/${upgrades} onto ${image}${toOlder ? ' (the older tag)' : ' (sf upgrade-service)'}: ` +
            `write gap ${gap.toFixed(3)} s, roll took ${((windowEnd - marginMs - startedAt) / 1000).toFixed(1)} s\n`,
        );
      }
    } finally {
      await older.remove();
    }
  } finally {
    etcd.close();
  }
  return gaps;
}

const cluster = await startCluster(3);
try {
  const name = 'bench-switchover';
  const created = await cluster.sf(
    'create-service',
    'postgres',
    'ha-small',
    name,
    '-c',
    JSON.stringify({ durability: 'remote-fsync' }),
  );
  if (created.code !== 0) throw new Error(created.stderr || created.stdout);
  const key = await sfJson<{ uri: string }>(cluster, 'create-service-key', name, 'bench');
  const detail = () => sfJson<Detail>(cluster, 'service', name);
  const allRunning = () =>
    waitFor(async () => (await detail()).replicaDetails.filter((r) => r.state === 'running').length === 3, {
      description: 'three running replicas',
      timeoutMs: 180_000,
      intervalMs: 250,
    });
  await Writer.prepare(key.uri);
  const writer = new Writer(key.uri);
  const gaps: number[] = [];
  /** The same, within 2 s of the switchover's own end (the figure before the window grew). */
  const switchoverOnlyGaps: number[] = [];
  const windows: number[] = [];
  let baseline = 0;
  let upgradeGapMax: number | null = null;
  writer.start();
  try {
    await allRunning();
    await waitFor(() => writer.acked.length >= 200, { description: '200 writes', timeoutMs: 120_000 });
    for (let i = 0; i < switchovers; i++) {
      await allRunning();
      const acked = writer.acked.length;
      await waitFor(() => writer.acked.length >= acked + 100, { description: '100 writes', timeoutMs: 120_000 });
      const startedAt = Date.now();
      const record = await sfJson<SwitchoverRecord>(cluster, 'switchover', name);
      const doneAt = Date.now();
      if (record.phase !== 'done') throw new Error(`switchover ${i + 1} ${record.phase}: ${record.message}`);
      // The pause can only end after the switchover did: wait for writes on the new primary,
      // and past the old primary's return as a replica.
      await allRunning();
      const wholeAt = Date.now();
      const windowEnd = wholeAt + marginMs;
      await waitFor(() => writer.firstAckAfter(windowEnd), {
        description: 'writes after the switchover',
        timeoutMs: 120_000,
      });
      const gap = longestPause(writer.acked, startedAt - marginMs, windowEnd);
      gaps.push(gap);
      switchoverOnlyGaps.push(longestPause(writer.acked, startedAt - marginMs, doneAt + marginMs));
      if (trace) {
        const events = await sfJson<Array<{ at: string; kind: string; message: string }>>(
          cluster,
          'events',
          '--limit',
          '60',
        );
        for (const e of events.filter((e) => Date.parse(e.at) >= startedAt - 500)) {
          process.stderr.write(`  ${e.at} ${e.kind}: ${e.message.slice(0, 140)}\n`);
        }
        const pauses = writer.acked.filter(
          (a, j) => j > 0 && a.at - (writer.acked[j - 1] as Ack).at > 300 && a.at >= startedAt - marginMs,
        );
        for (const a of pauses.slice(0, 5)) process.stderr.write(`  write resumed ${new Date(a.at).toISOString()}\n`);
        for (const c of writer.connects.filter((c) => c.connectedAt >= startedAt).slice(0, 3))
          process.stderr.write(
            `  writer connect ${new Date(c.startedAt).toISOString()} → up ${new Date(c.connectedAt).toISOString()}\n`,
          );
        for (const e of writer.errors.filter((e) => e.at >= startedAt).slice(0, 8))
          process.stderr.write(`  writer error ${new Date(e.at).toISOString()} ${e.message.slice(0, 100)}\n`);
      }
      windows.push(windowEnd - startedAt + marginMs);
      process.stderr.write(
        `switchover ${i + 1}/${switchovers}: replica ${record.from.ordinal} (${record.from.node}) → ${record.to.ordinal} (${record.to.node}), ` +
          `write gap ${gap.toFixed(3)} s (until the switchover ended: ${(switchoverOnlyGaps.at(-1) ?? 0).toFixed(3)} s), ` +
          `controller's stop→route ${((record.gapMs ?? 0) / 1000).toFixed(3)} s, whole again ${((wholeAt - doneAt) / 1000).toFixed(1)} s after\n`,
      );
    }
    const upgradeGaps = await measureUpgrades(cluster, name, writer, allRunning);
    upgradeGapMax = upgradeGaps.length > 0 ? Math.max(...upgradeGaps) : null;
    // Baseline: the same writer, no switchover, over a window as long as the longest one above.
    await allRunning();
    const quietFrom = Date.now();
    const quietMs = Math.max(...windows);
    await waitFor(() => writer.firstAckAfter(quietFrom + quietMs), {
      description: 'a quiet window of writes',
      timeoutMs: quietMs + 60_000,
    });
    baseline = longestPause(writer.acked, quietFrom, quietFrom + quietMs);
  } finally {
    await writer.stop();
  }
  const lost = await lostWrites(key.uri, writer.acked);
  const p50 = percentile(gaps, 50);
  const max = Math.max(...gaps);
  console.log(
    `postgres ha-small remote-fsync, 3 replicas: ${gaps.length} switchovers, write gap through the router ` +
      `p50 ${p50.toFixed(3)} s, max ${max.toFixed(3)} s (target p50 <= 0.5 s, max <= 1 s); ` +
      `acknowledged ${writer.acked.length}, lost ${lost.length}`,
  );
  console.log(
    `within 2 s of each switchover's end only: p50 ${percentile(switchoverOnlyGaps, 50).toFixed(3)} s, ` +
      `max ${Math.max(...switchoverOnlyGaps).toFixed(3)} s`,
  );
  console.log(`baseline: longest pause of the same writer without a switchover ${baseline.toFixed(3)} s`);
  console.log(
    upgradeGapMax === null
      ? 'no rolling upgrade measured (UPGRADES=0)'
      : `rolling upgrades (${upgrades}): longest write gap ${upgradeGapMax.toFixed(3)} s (target: no longer than one switchover)`,
  );
  console.log(
    JSON.stringify({
      switchover_gap_p50_s: Number(p50.toFixed(3)),
      switchover_gap_max_s: Number(max.toFixed(3)),
      upgrade_gap_max_s: upgradeGapMax === null ? null : Number(upgradeGapMax.toFixed(3)),
      lost: lost.length,
      switchovers: gaps.length,
      baseline_pause_max_s: Number(baseline.toFixed(3)),
    }),
  );
} finally {
  if (traceLogs) await cp(join(cluster.home, 'logs'), traceLogs, { recursive: true });
  await cluster.destroy();
}
