/**
 * The workloads of issue 13's table, each one run of a client against one endpoint:
 * pgbench 15 (select-only at 1/16/64 clients, a new connection per transaction, 64 rows of
 * 16 KiB per transaction) and iperf3 (1 and 8 streams). Each run reports its throughput and,
 * for pgbench, the p99 of its per-transaction latencies (from pgbench's own log).
 */
import { execFile } from 'node:child_process';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { BackendName, Endpoint } from './proxies.js';

const run = promisify(execFile);

export interface Workload {
  name: string;
  backend: BackendName;
  /** What one unit of work is: throughput is units per second. */
  unit: 'tx' | 'GiB';
  describe: string;
  run(endpoint: Endpoint, context: RunContext): Promise<RunResult>;
}

export interface RunContext {
  /** A directory the run may use (emptied before each run). */
  dir: string;
  durationS: number;
  pg: { user: string; database: string; clientEnv: NodeJS.ProcessEnv };
}

export interface RunResult {
  /** Units of work done. */
  units: number;
  /** Units per second. */
  throughput: number;
  /** 99th percentile of per-transaction latency, ms (`null` for raw TCP). */
  p99Ms: number | null;
}

/** The `q` quantile (0–1) of `values` (nearest rank). */
export function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] as number;
}

const largeResultsSql = "SELECT repeat('x', 16384) FROM generate_series(1, 64);\n";

interface PgbenchShape {
  clients: number;
  /** A new connection for every transaction (`-C`). */
  connectPerTx?: boolean;
  /** A custom script instead of the built-in select-only one. */
  script?: string;
}

async function pgbench(shape: PgbenchShape, endpoint: Endpoint, context: RunContext): Promise<RunResult> {
  await rm(context.dir, { recursive: true, force: true });
  await mkdir(context.dir, { recursive: true });
  let scriptArgs = ['-S'];
  if (shape.script !== undefined) {
    const file = join(context.dir, 'script.sql');
    await writeFile(file, shape.script);
    scriptArgs = ['-f', file];
  }
  const args = [
    '-n',
    ...scriptArgs,
    ...(shape.connectPerTx ? ['-C'] : []),
    '-c',
    String(shape.clients),
    '-j',
    String(Math.min(shape.clients, 2)),
    '-T',
    String(context.durationS),
    '-l',
    '--log-prefix',
    join(context.dir, 'tx'),
    '-h',
    endpoint.host,
    '-p',
    String(endpoint.port),
    '-U',
    context.pg.user,
    context.pg.database,
  ];
  const { stdout } = await run('pgbench', args, { env: context.pg.clientEnv, cwd: context.dir, maxBuffer: 1 << 24 });
  const failed = /number of failed transactions: (\d+)/.exec(stdout);
  if (failed && Number(failed[1]) > 0) throw new Error(`pgbench: ${failed[1]} failed transactions\n${stdout}`);
  // A run too short for every client to log in (a loaded machine) completes nothing.
  if (/number of transactions actually processed: 0\b/.test(stdout)) return { units: 0, throughput: 0, p99Ms: null };
  const tps = /^tps = ([\d.]+)/m.exec(stdout);
  if (!tps) throw new Error(`pgbench printed no tps:\n${stdout}`);
  const latenciesMs: number[] = [];
  for (const file of await readdir(context.dir)) {
    if (!file.startsWith('tx.')) continue;
    // Per transaction: client_id transaction_no time_us script_no epoch epoch_us.
    for (const line of (await readFile(join(context.dir, file), 'utf8')).split('\n')) {
      const us = Number(line.split(' ')[2]);
      if (line && Number.isFinite(us)) latenciesMs.push(us / 1000);
    }
  }
  return { units: latenciesMs.length, throughput: Number(tps[1]), p99Ms: quantile(latenciesMs, 0.99) };
}

async function iperf3(streams: number, endpoint: Endpoint, context: RunContext): Promise<RunResult> {
  const { stdout } = await run(
    'iperf3',
    ['-c', endpoint.host, '-p', String(endpoint.port), '-t', String(context.durationS), '-P', String(streams), '-J'],
    { maxBuffer: 1 << 24 },
  );
  const report = JSON.parse(stdout) as {
    error?: string;
    end?: { sum_received?: { bytes: number; seconds: number } };
  };
  const received = report.end?.sum_received;
  if (report.error || !received) throw new Error(`iperf3: ${report.error ?? 'no result'}`);
  const gib = received.bytes / 2 ** 30;
  return { units: gib, throughput: gib / received.seconds, p99Ms: null };
}

export const workloads: Workload[] = [
  {
    name: 'select-1',
    backend: 'pg',
    unit: 'tx',
    describe: 'pgbench -S, 1 client',
    run: (endpoint, context) => pgbench({ clients: 1 }, endpoint, context),
  },
  {
    name: 'select-16',
    backend: 'pg',
    unit: 'tx',
    describe: 'pgbench -S, 16 clients',
    run: (endpoint, context) => pgbench({ clients: 16 }, endpoint, context),
  },
  {
    name: 'select-64',
    backend: 'pg',
    unit: 'tx',
    describe: 'pgbench -S, 64 clients',
    run: (endpoint, context) => pgbench({ clients: 64 }, endpoint, context),
  },
  {
    name: 'connect-8',
    backend: 'pg',
    unit: 'tx',
    describe: 'pgbench -S -C (new connection per transaction), 8 clients',
    run: (endpoint, context) => pgbench({ clients: 8, connectPerTx: true }, endpoint, context),
  },
  {
    name: 'large-16',
    backend: 'pg',
    unit: 'tx',
    describe: '64 rows × 16 KiB per transaction, 16 clients',
    run: (endpoint, context) => pgbench({ clients: 16, script: largeResultsSql }, endpoint, context),
  },
  {
    name: 'tcp-1',
    backend: 'iperf',
    unit: 'GiB',
    describe: 'iperf3, 1 stream',
    run: (endpoint, context) => iperf3(1, endpoint, context),
  },
  {
    name: 'tcp-8',
    backend: 'iperf',
    unit: 'GiB',
    describe: 'iperf3, 8 streams',
    run: (endpoint, context) => iperf3(8, endpoint, context),
  },
];
