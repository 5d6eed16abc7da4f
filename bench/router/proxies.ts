/**
 * What the bench puts between the clients and the backends: nothing (direct), the router
 * (its real `dist/main.js` process, routes from real etcd records, the limits of
 * docs/router.md on), and HAProxy in TCP mode with one thread and with its default threads.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connectEtcd, freePort, json, Keyspace, type RouteRecord, startEtcd, waitFor } from '@service-foundry/core';

export interface Endpoint {
  host: string;
  port: number;
}

/** The backends every proxy forwards to. */
export interface Backends {
  pg: Endpoint;
  iperf: Endpoint;
}

export type BackendName = keyof Backends;

export interface BenchProxy {
  /** `direct`, `router`, `haproxy-1t`, `haproxy-default`. */
  name: string;
  /** Where clients connect to reach `backend`. */
  endpoint(backend: BackendName): Endpoint;
  /** The proxy's main process (its workers and threads are counted with it), or `null` for direct. */
  pid: number | null;
  stop(): Promise<void>;
}

const routerMain = fileURLToPath(new URL('../../packages/router/dist/main.js', import.meta.url));

/** Sessions per route in the bench's route records: room for 64 clients and the churn of `-C`. */
const benchMaxSessions = 400;

function accepting(endpoint: Endpoint): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(endpoint);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

/** Keeps a child's output for the error message should it exit early. */
function captureOutput(child: ChildProcess): () => string {
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-4000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return () => output;
}

export function direct(backends: Backends): BenchProxy {
  return { name: 'direct', endpoint: (backend) => backends[backend], pid: null, stop: async () => {} };
}

/**
 * The router as users run it: its own process, following route records in a real etcd,
 * one HAProxy process per route (counted with the router's CPU as its children).
 */
export async function startRouterProxy(dir: string, backends: Backends): Promise<BenchProxy> {
  const etcd = await startEtcd({ dataDir: join(dir, 'etcd') });
  const root = '/bench';
  const ports = { pg: await freePort(), iperf: await freePort() };
  await writeFile(join(dir, 'router.json'), JSON.stringify({ etcdEndpoints: [etcd.endpoint], keyspaceRoot: root }));
  const child = spawn(process.execPath, [routerMain, '--config', join(dir, 'router.json')], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, SF_LOG_LEVEL: 'warn' },
  });
  const output = captureOutput(child);
  const stop = async () => {
    await stopChild(child);
    await etcd.stop();
  };
  try {
    const client = connectEtcd({ endpoints: [etcd.endpoint] });
    try {
      for (const backend of ['pg', 'iperf'] as const) {
        const route: RouteRecord = {
          instanceId: `bench-${backend}`,
          protocol: 'tcp',
          port: ports[backend],
          target: { ...backends[backend] },
          epoch: 1,
          limits: { maxSessions: benchMaxSessions },
        };
        await client.put(new Keyspace(root).route(route.instanceId)).value(json(route));
      }
    } finally {
      client.close();
    }
    for (const backend of ['pg', 'iperf'] as const) {
      await waitFor(
        async () => {
          if (child.exitCode !== null) throw new Error(`router exited: ${output()}`);
          return accepting({ host: '127.0.0.1', port: ports[backend] });
        },
        { description: `router serving ${backend}`, timeoutMs: 30_000, intervalMs: 100, retryOn: () => false },
      );
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    name: 'router',
    endpoint: (backend) => ({ host: '127.0.0.1', port: ports[backend] }),
    pid: child.pid ?? null,
    stop,
  };
}

/**
 * HAProxy 2.6 (Debian) in TCP mode with the same timeouts as the router (connect 5 s, idle
 * 5 min). `threads`: `1`, or `null` for HAProxy's default (one per CPU).
 */
export async function startHaproxy(dir: string, backends: Backends, threads: 1 | null): Promise<BenchProxy> {
  const name = threads === 1 ? 'haproxy-1t' : 'haproxy-default';
  const ports = { pg: await freePort(), iperf: await freePort() };
  const config = [
    'global',
    '  maxconn 4000',
    ...(threads === 1 ? ['  nbthread 1'] : []),
    'defaults',
    '  mode tcp',
    '  timeout connect 5s',
    '  timeout client 300s',
    '  timeout server 300s',
    ...(['pg', 'iperf'] as const).flatMap((backend) => [
      `frontend fe_${backend}`,
      `  bind 127.0.0.1:${ports[backend]}`,
      `  default_backend be_${backend}`,
      `backend be_${backend}`,
      `  server ${backend} ${backends[backend].host}:${backends[backend].port}`,
    ]),
    '',
  ].join('\n');
  const file = join(dir, `${name}.cfg`);
  await writeFile(file, config);
  const child = spawn('haproxy', ['-db', '-f', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  const output = captureOutput(child);
  const stop = () => stopChild(child);
  try {
    for (const backend of ['pg', 'iperf'] as const) {
      await waitFor(
        async () => {
          if (child.exitCode !== null) throw new Error(`haproxy exited: ${output()}`);
          return accepting({ host: '127.0.0.1', port: ports[backend] });
        },
        { description: `${name} serving ${backend}`, timeoutMs: 30_000, intervalMs: 100, retryOn: () => false },
      );
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { name, endpoint: (backend) => ({ host: '127.0.0.1', port: ports[backend] }), pid: child.pid ?? null, stop };
}
