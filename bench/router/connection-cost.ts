/**
 * `npm run bench:router-connections`: what one TCP session costs the router by itself, next
 * to HAProxy with one thread, with no database in the way. A small echo backend in this
 * process; 8 clients open sessions through the proxy one after the other, each doing
 * `RTTS` round trips of one byte (default 1) and closing. Per proxy and round: sessions per
 * second and the proxy's CPU time per session (utime + stime of its process tree, from
 * /proc). `SESSIONS` per run (default 4000), `ROUNDS` (default 3), the proxies interleaved.
 * The last line is one JSON object with the medians.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { percentile } from '@service-foundry/test-support/percentile';
import { cpuMs } from './proc-cpu.js';
import { type BenchProxy, type Endpoint, startHaproxy, startRouterProxy } from './proxies.js';

const sessions = Number(process.env.SESSIONS ?? 4000);
const roundTrips = Number(process.env.RTTS ?? 1);
const rounds = Number(process.env.ROUNDS ?? 3);
const clients = 8;
for (const [name, value] of Object.entries({ SESSIONS: sessions, RTTS: roundTrips, ROUNDS: rounds })) {
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive integer`);
}

const median = (values: readonly number[]): number => percentile(values, 50);

/** One session: connect, `roundTrips` one-byte exchanges, FIN; resolves once closed. */
function session(endpoint: Endpoint): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect(endpoint);
    let left = roundTrips;
    socket.on('connect', () => socket.write('q'));
    socket.on('data', () => {
      left -= 1;
      if (left > 0) socket.write('q');
      else socket.end();
    });
    socket.on('close', () => resolve());
    socket.on('error', reject);
  });
}

async function measure(proxy: BenchProxy): Promise<{ perSecond: number; cpuUsPerSession: number }> {
  const endpoint = proxy.endpoint('pg');
  const pid = proxy.pid as number;
  const cpuBefore = cpuMs(pid);
  const startedAt = Date.now();
  let started = 0;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (started < sessions) {
        started += 1;
        await session(endpoint);
      }
    }),
  );
  const elapsedMs = Date.now() - startedAt;
  return { perSecond: (sessions * 1000) / elapsedMs, cpuUsPerSession: ((cpuMs(pid) - cpuBefore) * 1000) / sessions };
}

const backendSockets = new Set<Socket>();
const backend = createServer((socket) => {
  backendSockets.add(socket);
  socket.on('data', () => socket.write('a'));
  socket.on('end', () => socket.end());
  socket.on('close', () => backendSockets.delete(socket));
  socket.on('error', () => {});
});
await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
const address = backend.address();
if (!address || typeof address !== 'object') throw new Error('the echo backend has no port');
const echo = { host: '127.0.0.1', port: address.port };
const dir = await mkdtemp(join(tmpdir(), 'sf-bench-connections-'));
const proxies: BenchProxy[] = [];
try {
  proxies.push(await startRouterProxy(join(dir, 'router'), { pg: echo, iperf: echo }));
  proxies.push(await startHaproxy(dir, { pg: echo, iperf: echo }, 1));
  const results = new Map<string, Array<{ perSecond: number; cpuUsPerSession: number }>>();
  for (const proxy of proxies) {
    // Warm-up: the router's JIT, HAProxy's pools.
    for (let i = 0; i < 200; i++) await session(proxy.endpoint('pg'));
  }
  for (let round = 1; round <= rounds; round++) {
    for (const proxy of round % 2 ? proxies : [...proxies].reverse()) {
      const result = await measure(proxy);
      results.set(proxy.name, [...(results.get(proxy.name) ?? []), result]);
      console.log(
        `round ${round} ${proxy.name.padEnd(11)} ${result.perSecond.toFixed(0)} sessions/s, ` +
          `${result.cpuUsPerSession.toFixed(1)} µs CPU per session`,
      );
    }
  }
  const summary = Object.fromEntries(
    [...results].map(([name, runs]) => [
      name,
      {
        sessions_per_s: Math.round(median(runs.map((r) => r.perSecond))),
        cpu_us_per_session: Number(median(runs.map((r) => r.cpuUsPerSession)).toFixed(1)),
      },
    ]),
  );
  const haproxy = summary['haproxy-1t'];
  const cpuRatio = (router: { cpu_us_per_session: number } | undefined) =>
    router && haproxy ? Number((router.cpu_us_per_session / haproxy.cpu_us_per_session).toFixed(2)) : null;
  console.log(
    JSON.stringify({
      sessions,
      round_trips: roundTrips,
      rounds,
      ...summary,
      cpu_ratio_vs_haproxy: cpuRatio(summary.router),
    }),
  );
} finally {
  for (const proxy of proxies) await proxy.stop();
  for (const socket of backendSockets) socket.destroy();
  backend.close();
  await rm(dir, { recursive: true, force: true });
}
