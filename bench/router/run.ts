/**
 * `npm run bench:router`: the router's TCP data path against HAProxy 2.6 (issue 13).
 *
 * Every workload of {@link workloads} runs through direct, the router (`dist/main.js`, its
 * routes from etcd records with limits, each TCP route served by its own HAProxy process),
 * HAProxy with 1 thread and HAProxy with its default threads: interleaved (each round runs every workload through every proxy, the proxy order
 * rotating from round to round), ROUNDS rounds (default 3) of DURATION_S seconds (default
 * 10), medians. Per run: throughput, p99 latency (pgbench) and the proxy's CPU per unit of
 * work (utime + stime of its processes and threads, from /proc/<pid>/stat). WORKLOADS
 * (comma-separated names) runs a subset.
 *
 * Needs `pgbench`, `iperf3`, `haproxy` (scripts/setup.sh installs them), the catalog's
 * Postgres image (`sf images build`) and a built router (`npx tsc -b`). Removes the
 * container, stops every process and deletes its temp dir at the end. The last line is one
 * JSON object: min/max ratios of the router to HAProxy with 1 thread over the workloads,
 * and the per-workload figures.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitFor } from '@service-foundry/core';
import { type BenchPostgres, startPostgres } from './postgres.js';
import { cpuMs } from './proc-cpu.js';
import { type Backends, type BenchProxy, direct, startHaproxy, startRouterProxy } from './proxies.js';
import { type RunContext, type Workload, workloads } from './workloads.js';

const rounds = Number(process.env.ROUNDS ?? 3);
const durationS = Number(process.env.DURATION_S ?? 10);
const only = process.env.WORKLOADS?.split(',').filter(Boolean);
const selected = only ? workloads.filter((w) => only.includes(w.name)) : workloads;
if (!Number.isInteger(rounds) || rounds < 1) throw new Error('ROUNDS must be a positive integer');
if (!Number.isInteger(durationS) || durationS < 1) throw new Error('DURATION_S must be a positive integer');
if (selected.length === 0) throw new Error(`WORKLOADS names none of ${workloads.map((w) => w.name).join(', ')}`);

interface Sample {
  throughput: number;
  p99Ms: number | null;
  /** BenchProxy CPU per unit: µs per transaction, or ms per GiB. */
  cpuPerUnit: number | null;
  /** BenchProxy CPU over the run, in cores (1 = one core busy all along). */
  cpuCores: number | null;
}

interface Figures {
  throughput: number;
  p99Ms: number | null;
  cpuPerUnit: number | null;
  cpuCores: number | null;
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};
const medianOrNull = (values: Array<number | null>): number | null => {
  const present = values.filter((v): v is number => v !== null);
  return present.length ? median(present) : null;
};
const round3 = (value: number | null): number | null => (value === null ? null : Math.round(value * 1000) / 1000);

async function measure(proxy: BenchProxy, workload: Workload, context: RunContext): Promise<Sample> {
  const startedAt = Date.now();
  const before = proxy.pid === null ? 0 : cpuMs(proxy.pid);
  const result = await workload.run(proxy.endpoint(workload.backend), context);
  if (result.units === 0) {
    throw new Error(`${workload.name} through ${proxy.name}: nothing completed in ${context.durationS} s`);
  }
  const used = proxy.pid === null ? null : cpuMs(proxy.pid) - before;
  const elapsedMs = Date.now() - startedAt;
  const perUnit = used === null ? null : workload.unit === 'tx' ? (used * 1000) / result.units : used / result.units;
  return {
    throughput: result.throughput,
    p99Ms: result.p99Ms,
    cpuPerUnit: perUnit,
    cpuCores: used === null ? null : used / elapsedMs,
  };
}

async function startIperfServer(): Promise<{ port: number; stop(): Promise<void> }> {
  const port = await freePort();
  const child = spawn('iperf3', ['-s', '-B', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  };
  try {
    await waitFor(
      () => {
        if (child.exitCode !== null) throw new Error('iperf3 server exited');
        return new Promise<boolean>((resolve) => {
          const socket = connect({ host: '127.0.0.1', port });
          socket.once('connect', () => {
            socket.destroy();
            resolve(true);
          });
          socket.once('error', () => resolve(false));
        });
      },
      { description: 'iperf3 server listening', timeoutMs: 10_000, intervalMs: 50, retryOn: () => false },
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return { port, stop };
}

/** The issue's three figures: min/max over the workloads of the ratios to haproxy-1t. */
function headline(ratios: { throughput: number[]; p99: number[]; cpu: number[] }) {
  return {
    throughput_ratio_vs_haproxy_min: round3(ratios.throughput.length ? Math.min(...ratios.throughput) : null),
    p99_ratio_vs_haproxy_max: round3(ratios.p99.length ? Math.max(...ratios.p99) : null),
    cpu_ratio_vs_haproxy_max: round3(ratios.cpu.length ? Math.max(...ratios.cpu) : null),
  };
}

function ratio(a: number | null | undefined, b: number | null | undefined): number | null {
  return a === null || a === undefined || b === null || b === undefined || b === 0 ? null : a / b;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'sf-bench-router-'));
  const stops: Array<() => Promise<void>> = [];
  try {
    const postgres: BenchPostgres = await startPostgres(dir, 10);
    stops.push(postgres.stop);
    const iperf = await startIperfServer();
    stops.push(iperf.stop);
    const backends: Backends = {
      pg: { host: postgres.host, port: postgres.port },
      iperf: { host: '127.0.0.1', port: iperf.port },
    };
    const proxies: BenchProxy[] = [direct(backends)];
    for (const start of [
      () => startRouterProxy(join(dir, 'router'), backends),
      () => startHaproxy(dir, backends, 1),
      () => startHaproxy(dir, backends, null),
    ]) {
      const proxy = await start();
      stops.push(proxy.stop);
      proxies.push(proxy);
    }
    const context = (seconds: number): RunContext => ({
      dir: join(dir, 'run'),
      durationS: seconds,
      pg: { user: postgres.user, database: postgres.database, clientEnv: postgres.clientEnv },
    });
    console.log(
      `bench:router — ${selected.length} workloads × ${proxies.length} paths × ${rounds} rounds × ${durationS} s`,
    );
    // Warm-up: JIT, connection caches and Postgres' buffers, nothing recorded.
    for (const proxy of proxies) {
      for (const workload of selected) await workload.run(proxy.endpoint(workload.backend), context(3));
    }
    const samples = new Map<string, Sample[]>();
    for (let r = 0; r < rounds; r += 1) {
      for (const workload of selected) {
        for (let i = 0; i < proxies.length; i += 1) {
          const proxy = proxies[(i + r) % proxies.length] as BenchProxy;
          const sample = await measure(proxy, workload, context(durationS));
          const key = `${workload.name}/${proxy.name}`;
          samples.set(key, [...(samples.get(key) ?? []), sample]);
          console.log(
            `round ${r + 1} ${workload.name.padEnd(10)} ${proxy.name.padEnd(16)} ${sample.throughput.toFixed(1).padStart(9)} ${workload.unit}/s` +
              `  p99 ${sample.p99Ms === null ? '   -  ' : `${sample.p99Ms.toFixed(2)} ms`}` +
              `  cpu ${sample.cpuPerUnit === null ? '-' : `${sample.cpuPerUnit.toFixed(workload.unit === 'tx' ? 1 : 0)} ${workload.unit === 'tx' ? 'µs/tx' : 'ms/GiB'}`}`,
          );
        }
      }
    }

    const perWorkload: Record<string, unknown> = {};
    const extremes = { throughput: [] as number[], p99: [] as number[], cpu: [] as number[] };
    console.log('\nmedians (throughput; p99 ms; proxy CPU per unit; proxy CPU in cores)');
    for (const workload of selected) {
      const figures: Record<string, Figures> = {};
      for (const proxy of proxies) {
        const runs = samples.get(`${workload.name}/${proxy.name}`) ?? [];
        figures[proxy.name] = {
          throughput: median(runs.map((s) => s.throughput)),
          p99Ms: medianOrNull(runs.map((s) => s.p99Ms)),
          cpuPerUnit: medianOrNull(runs.map((s) => s.cpuPerUnit)),
          cpuCores: medianOrNull(runs.map((s) => s.cpuCores)),
        };
      }
      const vs = (routerName: string, base: Figures | undefined) => ({
        throughput: round3(ratio(figures[routerName]?.throughput, base?.throughput)),
        p99: round3(ratio(figures[routerName]?.p99Ms, base?.p99Ms)),
        cpu: round3(ratio(figures[routerName]?.cpuPerUnit, base?.cpuPerUnit)),
      });
      const vsHaproxy1t = vs('router', figures['haproxy-1t']);
      const vsHaproxyDefault = vs('router', figures['haproxy-default']);
      if (vsHaproxy1t.throughput !== null) extremes.throughput.push(vsHaproxy1t.throughput);
      if (vsHaproxy1t.p99 !== null) extremes.p99.push(vsHaproxy1t.p99);
      if (vsHaproxy1t.cpu !== null) extremes.cpu.push(vsHaproxy1t.cpu);
      // HAProxy needing most of its one core, or losing a tenth of the direct throughput,
      // means the proxy limits this workload; otherwise the database or client does.
      const one = figures['haproxy-1t'];
      const directThroughput = figures.direct?.throughput ?? 0;
      const proxyBound = (one?.cpuCores ?? 0) >= 0.8 || (one?.throughput ?? 0) < 0.9 * directThroughput;
      console.log(`${workload.name} (${workload.describe}; ${workload.unit}/s)`);
      for (const [name, f] of Object.entries(figures)) {
        console.log(
          `  ${name.padEnd(16)} ${f.throughput.toFixed(1).padStart(9)}  p99 ${f.p99Ms?.toFixed(2) ?? '-'}  cpu/unit ${f.cpuPerUnit?.toFixed(1) ?? '-'}  cores ${f.cpuCores?.toFixed(2) ?? '-'}`,
        );
      }
      console.log(
        `  router ÷ haproxy-1t: throughput ${vsHaproxy1t.throughput}  p99 ${vsHaproxy1t.p99}  cpu ${vsHaproxy1t.cpu};` +
          ` ÷ haproxy-default: throughput ${vsHaproxyDefault.throughput}  p99 ${vsHaproxyDefault.p99}  cpu ${vsHaproxyDefault.cpu}`,
      );
      console.log(`  ${proxyBound ? 'proxy-bound' : 'database/client-bound'}`);
      perWorkload[workload.name] = {
        unit: workload.unit,
        bound: proxyBound ? 'proxy' : 'database/client',
        figures: Object.fromEntries(
          Object.entries(figures).map(([name, f]) => [
            name,
            {
              throughput: round3(f.throughput),
              p99Ms: round3(f.p99Ms),
              cpuPerUnit: round3(f.cpuPerUnit),
              cpuCores: round3(f.cpuCores),
            },
          ]),
        ),
        vsHaproxy1t,
        vsHaproxyDefault,
      };
    }
    console.log(
      JSON.stringify({
        ...headline(extremes),
        rounds,
        durationS,
        cpuUnits: { tx: 'µs per transaction', GiB: 'ms per GiB' },
        workloads: perWorkload,
      }),
    );
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => {});
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
