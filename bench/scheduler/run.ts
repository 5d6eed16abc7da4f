/**
 * `npm run bench:scheduler`: placement throughput and latency of several schedulers
 * against a 3-member etcd on loopback, with SIMULATED nodes (no Docker, no agents).
 * The last line printed is one JSON object with the figures.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { connectEtcd, createLogger, type InstanceRecord, json, Keyspace, SecretBox } from '@service-foundry/core';
import { checkPlacements, type RunningScheduler, startScheduler } from '@service-foundry/scheduler';
import { seededRandom } from '@service-foundry/test-support';
import { cpuSeconds, difference, startEtcdCluster, unaryRequests } from './etcd-cluster.js';
import { SimulatedNodes } from './simulated-nodes.js';
import { instances, nodeShape } from './workload.js';

const { values: args } = parseArgs({
  options: {
    nodes: { type: 'string', default: '1000' },
    replicas: { type: 'string', default: '10000' },
    schedulers: { type: 'string', default: '3' },
    mode: { type: 'string', default: 'leader' },
    'in-process': { type: 'boolean', default: false },
    seed: { type: 'string', default: '42' },
    /** Replicas per second to create (paced arrivals); 0: all at once, as fast as etcd takes them. */
    rate: { type: 'string', default: '0' },
    'timeout-s': { type: 'string', default: '300' },
    keep: { type: 'boolean', default: false },
    'scheduler-config': { type: 'string', default: '{}' },
    /** Extra node flags for scheduler child processes, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof". */
    'node-args': { type: 'string', default: '' },
  },
});

const nodeCount = Number(args.nodes);
const replicaCount = Number(args.replicas);
const schedulerCount = Number(args.schedulers);
const mode = args.mode === 'active-active' ? 'active-active' : 'leader';
const inProcess = args['in-process'] === true;
const random = seededRandom(Number(args.seed));
const mainJs = resolve(import.meta.dirname, '../../packages/scheduler/dist/main.js');

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}
const say = (line: string) => process.stdout.write(`${line}\n`);
const round = (n: number, digits = 1) => Math.round(n * 10 ** digits) / 10 ** digits;

interface SchedulerHandle {
  /** Child process id; undefined when the scheduler runs in this process. */
  pid: number | undefined;
  stop(): Promise<void>;
}

async function startSchedulers(dir: string, endpoints: string[], root: string): Promise<SchedulerHandle[]> {
  const base = {
    etcdEndpoints: endpoints,
    keyspaceRoot: root,
    secretsKeyFile: await SecretBox.ensureKeyFile(join(dir, 'secrets.key')),
    controller: false,
    mode,
    ...JSON.parse(args['scheduler-config'] ?? '{}'),
  };
  const handles: SchedulerHandle[] = [];
  for (let i = 0; i < schedulerCount; i++) {
    const name = `bench-scheduler-${i + 1}`;
    if (inProcess) {
      const log = createLogger({ name, level: 'warn' });
      const running: RunningScheduler = await startScheduler({ ...base, name }, { log });
      handles.push({ pid: undefined, stop: () => running.stop() });
      continue;
    }
    if (!existsSync(mainJs)) throw new Error(`${mainJs} is missing: run \`npx tsc -b\` first`);
    const file = join(dir, `${name}.json`);
    await writeFile(file, JSON.stringify({ ...base, name }));
    const out = await open(join(dir, `${name}.log`), 'a');
    const nodeArgs = (args['node-args'] ?? '').split(' ').filter(Boolean);
    const child: ChildProcess = spawn(process.execPath, [...nodeArgs, mainJs, '--config', file], {
      stdio: ['ignore', out.fd, out.fd],
      env: { ...process.env, SF_LOG_LEVEL: process.env.SF_BENCH_LOG_LEVEL ?? 'info' },
    });
    await out.close();
    const exited = new Promise<void>((done) => child.once('exit', () => done()));
    handles.push({
      pid: child.pid,
      stop: async () => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
        await exited;
      },
    });
  }
  return handles;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'sf-bench-scheduler-'));
  const etcd = await startEtcdCluster(dir);
  const client = connectEtcd({ endpoints: etcd.endpoints });
  const keys = new Keyspace('/bench');
  const nodes = new SimulatedNodes(client, keys);
  let schedulers: SchedulerHandle[] = [];
  try {
    say(
      `machine: ${cpus().length} cpus, load average ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')} before the run (other work on the machine skews the figures)`,
    );
    say(`etcd: 3 members on loopback (${etcd.endpoints.join(', ')}), data in ${dir}`);
    await nodes.register(nodeCount, (i) => nodeShape(random, i));
    const capacity = nodes.records.reduce(
      (sum, n) => ({ cpu: sum.cpu + n.capacity.cpuMillis, mem: sum.mem + n.capacity.memoryMb }),
      { cpu: 0, mem: 0 },
    );
    const workload = instances(random, replicaCount);
    const asked = workload.reduce(
      (sum, i) => ({
        cpu: sum.cpu + i.replicas * i.resources.cpuMillis,
        mem: sum.mem + i.replicas * i.resources.memoryMb,
      }),
      { cpu: 0, mem: 0 },
    );
    say(
      `cluster: ${nodeCount} simulated nodes (SIMULATION: node records under leases, no agents), 4 zones, ` +
        `${round(capacity.cpu / 1000, 0)} cpu / ${round(capacity.mem / 1024, 0)} GiB`,
    );
    say(
      `workload: ${workload.length} instances, ${replicaCount} replicas (1-3 per instance; 250m/512M, 1/2G, 2/8G), ` +
        `asking ${round((100 * asked.cpu) / capacity.cpu, 0)}% of cpu, ${round((100 * asked.mem) / capacity.mem, 0)}% of memory`,
    );
    schedulers = await startSchedulers(dir, etcd.endpoints, keys.root);
    // Wait until every scheduler is registered, so the run measures placement, not start-up.
    const deadline = Date.now() + 120_000;
    while ((await client.getAll().prefix(keys.schedulers()).count()) < schedulerCount) {
      if (Date.now() > deadline) throw new Error('schedulers did not register within 120 s');
      await new Promise((r) => setTimeout(r, 50));
    }
    say(
      `schedulers: ${schedulerCount} × ${mode}, ${inProcess ? 'in this process' : 'one child process each'} ` +
        `(node ${process.version}, ${process.platform}); scheduler config ${args['scheduler-config']}`,
    );

    const createdAt = new Map<string, number>();
    const placedAt: number[] = [];
    const latencies: number[] = [];
    const seen = new Set<string>();
    let resolveDone: () => void = () => undefined;
    const done = new Promise<void>((r) => {
      resolveDone = r;
    });
    const watcher = await client.watch().prefix(keys.placements()).create();
    watcher.on('put', (kv) => {
      const key = kv.key.toString();
      if (seen.has(key)) return;
      seen.add(key);
      const now = performance.now();
      const instanceId = Keyspace.tail(keys.placements(), key)[0] ?? '';
      placedAt.push(now);
      latencies.push(now - (createdAt.get(instanceId) ?? now));
      if (seen.size >= replicaCount) resolveDone();
    });

    const cpu = async () => ({
      etcd: (await Promise.all(etcd.pids.map(cpuSeconds))).reduce((a, b) => a + b, 0),
      schedulers: (await Promise.all(schedulers.map((s) => (s.pid ? cpuSeconds(s.pid) : 0)))).reduce(
        (a, b) => a + b,
        0,
      ),
      harness: await cpuSeconds(process.pid),
    });
    const cpuBefore = await cpu();
    const before = await unaryRequests(etcd.endpoints);
    const start = performance.now();
    let harnessRequests = 0;
    // The broker's part: 100 instances per transaction, 4 in flight, as fast as etcd takes
    // them — or paced at --rate replicas per second, in batches of 20 instances.
    const rate = Number(args.rate);
    const batchSize = rate > 0 ? 20 : 100;
    const batches: InstanceRecord[][] = [];
    for (let i = 0; i < workload.length; i += batchSize) batches.push(workload.slice(i, i + batchSize));
    let nextBatch = 0;
    let scheduled = 0;
    const writer = async () => {
      while (nextBatch < batches.length) {
        const batch = batches[nextBatch++] ?? [];
        if (rate > 0) {
          const due = start + (1000 * scheduled) / rate;
          scheduled += batch.reduce((n, i) => n + i.replicas, 0);
          const wait = due - performance.now();
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        }
        const now = new Date().toISOString();
        const puts = batch.map((i) =>
          client
            .put(keys.instance(i.id))
            .value(json({ ...i, createdAt: now, operation: { ...i.operation, startedAt: now } })),
        );
        harnessRequests++;
        await client
          .if(keys.instance('bench-guard'), 'Version', '==', 0)
          .then(...puts)
          .commit();
        const ackedAt = performance.now();
        for (const i of batch) createdAt.set(i.id, ackedAt);
      }
    };
    await Promise.all(rate > 0 ? [writer()] : [writer(), writer(), writer(), writer()]);
    const createdIn = performance.now() - start;
    say(
      `created ${workload.length} instances in ${round(createdIn / 1000, 2)} s (${harnessRequests} transactions` +
        `${rate > 0 ? `, paced at ${rate} replicas/s` : ', all at once'})`,
    );

    const timeoutMs = Number(args['timeout-s']) * 1000;
    const timedOut = await Promise.race([
      done.then(() => false),
      new Promise<boolean>((r) => setTimeout(() => r(true), timeoutMs).unref()),
    ]);
    const end = performance.now();
    const after = await unaryRequests(etcd.endpoints);
    const cpuAfter = await cpu();
    await watcher.cancel();
    for (const s of schedulers) await s.stop();
    schedulers = [];

    const placed = seen.size;
    const elapsedS = ((placedAt[placedAt.length - 1] ?? end) - start) / 1000;
    const sortedAt = [...placedAt].sort((a, b) => a - b);
    const t10 = percentile(sortedAt, 10);
    const t90 = percentile(sortedAt, 90);
    const steady = (0.8 * placed) / ((t90 - t10) / 1000);
    const sortedLatency = [...latencies].sort((a, b) => a - b);
    const requests = difference(after, before);
    const total = [...requests.values()].reduce((n, v) => n + v, 0);
    const schedulerRequests = total - harnessRequests;
    const nodeSizes = new Map(nodes.records.map((n) => [n.name, n]));
    const violations = await checkPlacements(client, keys, { nodes: nodeSizes, expectAllPlaced: true });

    if (timedOut) say(`TIMED OUT after ${args['timeout-s']} s with ${placed} of ${replicaCount} placed`);
    say(`placed ${placed} replicas in ${round(elapsedS, 2)} s from the first instance write to the last placement`);
    say(
      `placements/s: ${round(placed / elapsedS, 0)} overall, ${round(steady, 0)} between the 10th and 90th percentile`,
    );
    say(
      `placement latency (instance write acknowledged → placement seen by a watch): ` +
        `p50 ${round(percentile(sortedLatency, 50), 0)} ms, p90 ${round(percentile(sortedLatency, 90), 0)} ms, ` +
        `p99 ${round(percentile(sortedLatency, 99), 0)} ms, max ${round(sortedLatency[sortedLatency.length - 1] ?? 0, 0)} ms`,
    );
    say(
      `etcd unary requests during the run (grpc_server_handled_total, all members): ${total} = ` +
        `${[...requests].map(([m, v]) => `${m} ${v}`).join(', ')}; minus ${harnessRequests} instance writes ` +
        `= ${schedulerRequests} by the schedulers`,
    );
    say(
      `CPU used during the run (2 cores = ${round((2 * (end - start)) / 1000, 1)} s available): etcd members ` +
        `${round(cpuAfter.etcd - cpuBefore.etcd)} s, schedulers ${inProcess ? '(in the harness)' : `${round(cpuAfter.schedulers - cpuBefore.schedulers)} s`}, ` +
        `harness and simulated nodes ${round(cpuAfter.harness - cpuBefore.harness)} s`,
    );
    say(`etcd requests per placement: ${round(schedulerRequests / Math.max(1, placed), 3)}`);
    say(
      violations.length === 0
        ? `checker: 0 violations (every replica placed exactly once, with its ledger entry and assignment; no node over capacity; no two replicas of an instance on one node or in one zone)`
        : `checker: ${violations.length} violations, first: ${violations
            .slice(0, 5)
            .map((v) => `${v.rule}: ${v.detail}`)
            .join('; ')}`,
    );
    const result = {
      placements_per_s: round(placed / elapsedS, 0),
      p50_ms: round(percentile(sortedLatency, 50), 0),
      p99_ms: round(percentile(sortedLatency, 99), 0),
      etcd_requests_per_placement: round(schedulerRequests / Math.max(1, placed), 3),
      violations: violations.length,
    };
    say(JSON.stringify(result));
    if (result.violations > 0 || timedOut) process.exitCode = 1;
  } finally {
    for (const s of schedulers) await s.stop().catch(() => undefined);
    await nodes.stop().catch(() => undefined);
    client.close();
    await etcd.stop();
    if (!args.keep && process.exitCode !== 1) await rm(dir, { recursive: true, force: true });
    else process.stderr.write(`bench: logs kept in ${dir}\n`);
  }
}

await main();
