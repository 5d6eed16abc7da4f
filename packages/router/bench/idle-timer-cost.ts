/**
 * `npm run bench:router-idle-timer` (`node --import tsx packages/router/bench/idle-timer-cost.ts`): what the idle timeout costs
 * on the data path. Runs the router (`dist/main.js`, its own process) with
 * `idleTimeoutMs: 0` and with the default (300000), ROUNDS (default 3) times each,
 * alternating, and measures through one TCP route:
 *
 * - bulk: BULK_MB (default 1024) MiB in 64 KiB writes over one connection to a sink;
 * - ping-pong: 20 connections × PINGS (default 5000) round trips of 64 bytes to an echo.
 *
 * Prints the median of each, and of the router's CPU time per GiB and per round trip (the
 * figure that holds still on a busy machine). Needs a built router (`npx tsc -b`); cleans up after itself.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connectEtcd, freePort, json, Keyspace, startEtcd, waitFor } from '@service-foundry/core';

const rounds = Number(process.env.ROUNDS ?? 3);
const bulkMb = Number(process.env.BULK_MB ?? 1024);
const pings = Number(process.env.PINGS ?? 5000);
const mainJs = fileURLToPath(new URL('../dist/main.js', import.meta.url));

async function listen(handler: (socket: Socket) => void): Promise<{ server: Server; port: number }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address !== 'object') throw new Error('no port');
  return { server, port: address.port };
}

/** CPU time (user + system) the process used so far, in ms: robust to other load on the machine. */
function cpuMs(pid: number): number {
  // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

async function connected(port: number): Promise<Socket> {
  const socket = connect({ host: '127.0.0.1', port });
  socket.setNoDelay(true);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return socket;
}

async function bulk(port: number, sunk: () => number): Promise<number> {
  const socket = await connected(port);
  const chunk = Buffer.alloc(64 * 1024, 7);
  const total = bulkMb * 1024 * 1024;
  const start = sunk();
  const startedAt = process.hrtime.bigint();
  for (let sent = 0; sent < total; sent += chunk.length) {
    if (!socket.write(chunk)) await new Promise((resolve) => socket.once('drain', resolve));
  }
  await waitFor(() => sunk() - start >= total, { description: 'bulk received', timeoutMs: 120_000, intervalMs: 5 });
  const seconds = Number(process.hrtime.bigint() - startedAt) / 1e9;
  socket.destroy();
  return bulkMb / seconds;
}

async function pingPong(port: number): Promise<number> {
  const sockets = await Promise.all(Array.from({ length: 20 }, () => connected(port)));
  const message = Buffer.alloc(64, 1);
  const startedAt = process.hrtime.bigint();
  await Promise.all(
    sockets.map(
      (socket) =>
        new Promise<void>((resolve) => {
          let left = pings;
          let pending = 0;
          socket.on('data', (data: Buffer) => {
            pending -= data.length;
            if (pending > 0) return;
            left -= 1;
            if (left === 0) resolve();
            else {
              pending = message.length;
              socket.write(message);
            }
          });
          pending = message.length;
          socket.write(message);
        }),
    ),
  );
  const seconds = Number(process.hrtime.bigint() - startedAt) / 1e9;
  for (const socket of sockets) socket.destroy();
  return (20 * pings) / seconds;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'sf-idle-cost-'));
  let sunkBytes = 0;
  const sink = await listen((socket) => {
    socket.on('data', (data: Buffer) => {
      sunkBytes += data.length;
    });
    socket.on('error', () => {});
  });
  const echo = await listen((socket) => {
    socket.on('data', (data: Buffer) => socket.write(data));
    socket.on('error', () => {});
  });
  const etcd = await startEtcd({ dataDir: join(dir, 'etcd') });
  const client = connectEtcd({ endpoints: [etcd.endpoint] });
  const keys = new Keyspace('/bench');
  const sinkPort = await freePort();
  const echoPort = await freePort();
  for (const [id, port, target] of [
    ['sink', sinkPort, sink.port],
    ['echo', echoPort, echo.port],
  ] as const) {
    const route = { instanceId: id, protocol: 'tcp', port, target: { host: '127.0.0.1', port: target }, epoch: 1 };
    await client.put(keys.route(id)).value(json(route));
  }
  const results: Record<
    string,
    { bulkMBps: number[]; roundTripsPerS: number[]; routerCpuMsPerGiB: number[]; routerCpuUsPerRoundTrip: number[] }
  > = {};
  try {
    for (let round = 0; round < rounds; round += 1) {
      for (const idleTimeoutMs of [0, 300_000]) {
        const file = join(dir, `router-${idleTimeoutMs}.json`);
        await writeFile(
          file,
          JSON.stringify({ etcdEndpoints: [etcd.endpoint], keyspaceRoot: '/bench', idleTimeoutMs }),
        );
        const router: ChildProcess = spawn(process.execPath, [mainJs, '--config', file], {
          stdio: 'ignore',
          env: { ...process.env, SF_LOG_LEVEL: 'warn' },
        });
        try {
          await waitFor(() => connected(echoPort).then((s) => s.destroy() ?? true), {
            description: 'router serving',
            timeoutMs: 20_000,
            intervalMs: 100,
          });
          const name = `idleTimeoutMs=${idleTimeoutMs}`;
          const entry = results[name] ?? {
            bulkMBps: [],
            roundTripsPerS: [],
            routerCpuMsPerGiB: [],
            routerCpuUsPerRoundTrip: [],
          };
          results[name] = entry;
          const pid = router.pid ?? 0;
          let cpu = cpuMs(pid);
          entry.bulkMBps.push(await bulk(sinkPort, () => sunkBytes));
          entry.routerCpuMsPerGiB.push(((cpuMs(pid) - cpu) * 1024) / bulkMb);
          cpu = cpuMs(pid);
          entry.roundTripsPerS.push(await pingPong(echoPort));
          entry.routerCpuUsPerRoundTrip.push(((cpuMs(pid) - cpu) * 1000) / (20 * pings));
        } finally {
          const exited = new Promise((resolve) => router.once('exit', resolve));
          router.kill('SIGTERM');
          await exited;
        }
      }
    }
    const summary = Object.fromEntries(
      Object.entries(results).map(([name, r]) => [
        name,
        {
          bulkMBps: Math.round(median(r.bulkMBps)),
          roundTripsPerS: Math.round(median(r.roundTripsPerS)),
          routerCpuMsPerGiB: Math.round(median(r.routerCpuMsPerGiB)),
          routerCpuUsPerRoundTrip: Number(median(r.routerCpuUsPerRoundTrip).toFixed(2)),
          runs: r,
        },
      ]),
    );
    console.log(JSON.stringify(summary, null, 2));
  } finally {
    client.close();
    await etcd.stop();
    sink.server.close();
    echo.server.close();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
