import { setTimeout as delay } from 'node:timers/promises';
import { Keyspace, readPrefix, statusCodec, waitFor } from '@service-foundry/core';
import { killNode, startCluster, type TestCluster } from '@service-foundry/test-support/cluster';
import { percentile } from '@service-foundry/test-support/percentile';
import { lostWrites, Writer } from '@service-foundry/test-support/writer';

interface Detail {
  id: string;
  primary: { node: string; epoch: number } | null;
  replicaDetails: Array<{ node: string; state: string }>;
}

const failovers = Number(process.env.FAILOVERS ?? 5);

/** Samples replica statuses: two running replicas reporting role primary at once is split brain. */
function watchSplitBrain(cluster: TestCluster, instanceId: string): { stop(): Promise<number> } {
  const client = cluster.etcdAsRoot();
  const keys = new Keyspace();
  let samples = 0;
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      // etcd may be briefly unreachable (restarting under its supervisor): that sample is
      // skipped, never an unhandled rejection that ends the bench.
      const read = await readPrefix(client, statusCodec, keys.instanceStatuses(instanceId)).catch(() => undefined);
      const primaries = [...(read?.items.values() ?? [])].filter(
        (s) => s.value.state === 'running' && s.value.role === 'primary',
      );
      if (primaries.length > 1) samples++;
      await delay(100); // sampling period
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await loop;
      client.close();
      return samples;
    },
  };
}

async function runMode(cluster: TestCluster, durability: 'remote-fsync' | 'async') {
  const name = `bench-${durability}`;
  const created = await cluster.sf(
    'create-service',
    'postgres',
    'ha-small',
    name,
    '-c',
    JSON.stringify({ durability }),
  );
  if (created.code !== 0) throw new Error(created.stderr);
  const key = JSON.parse((await cluster.sf('create-service-key', name, 'bench', '--json')).stdout) as { uri: string };
  const detail = async () => JSON.parse((await cluster.sf('service', name, '--json')).stdout) as Detail;
  await Writer.prepare(key.uri);
  const writer = new Writer(key.uri);
  const split = watchSplitBrain(cluster, (await detail()).id);
  const rtos: number[] = [];
  writer.start();
  try {
    for (let i = 0; i < failovers; i++) {
      await waitFor(async () => (await detail()).replicaDetails.filter((r) => r.state === 'running').length === 3, {
        description: 'three running replicas',
        timeoutMs: 120_000,
        intervalMs: 250,
      });
      const acked = writer.acked.length;
      await waitFor(() => writer.acked.length >= acked + 100, { description: '100 writes', timeoutMs: 60_000 });
      const primary = (await detail()).primary;
      if (!primary) throw new Error('no primary');
      await killNode(cluster, primary.node);
      const faultAt = Date.now();
      const first = await waitFor(() => writer.firstAckAfter(faultAt), {
        description: 'first write after failover',
        timeoutMs: 120_000,
      });
      rtos.push((first.at - faultAt) / 1000);
      process.stderr.write(
        `${durability} failover ${i + 1}/${failovers}: ${primary.node} killed, RTO ${rtos.at(-1)?.toFixed(2)} s\n`,
      );
      // The lost node comes back: an operator unfences it and the platform restarts its agent.
      const unfence = await cluster.sf('unfence', primary.node);
      if (unfence.code !== 0) throw new Error(unfence.stderr || unfence.stdout);
      await cluster.sf('up');
    }
  } finally {
    await writer.stop();
  }
  const lost = await lostWrites(key.uri, writer.acked);
  return { rtos, lost: lost.length, acked: writer.acked.length, split: await split.stop() };
}

const cluster = await startCluster(3);
try {
  const sync = await runMode(cluster, 'remote-fsync');
  const async_ = await runMode(cluster, 'async');
  const all = [...sync.rtos, ...async_.rtos];
  console.log(
    `remote-fsync: ${sync.rtos.length} failovers, RTO ${sync.rtos.map((r) => r.toFixed(2)).join(' ')} s; acknowledged ${sync.acked}, lost ${sync.lost}`,
  );
  console.log(
    `async:        ${async_.rtos.length} failovers, RTO ${async_.rtos.map((r) => r.toFixed(2)).join(' ')} s; acknowledged ${async_.acked}, lost ${async_.lost}`,
  );
  console.log(
    `RTO p50 ${percentile(all, 50).toFixed(2)} s, p99 ${percentile(all, 99).toFixed(2)} s (target p50 <= 5 s, p99 <= 10 s)`,
  );
  console.log(
    JSON.stringify({
      failovers: all.length,
      rto_p50_s: Number(percentile(all, 50).toFixed(2)),
      rto_p99_s: Number(percentile(all, 99).toFixed(2)),
      acked_lost_sync: sync.lost,
      acked_lost_async: async_.lost,
      split_brain: sync.split + async_.split,
    }),
  );
} finally {
  await cluster.destroy();
}
