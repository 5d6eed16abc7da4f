/**
 * `npm run bench:router-flood` (`node --import tsx packages/router/bench/idle-flood.ts`): the idle-connection flood of
 * issue 9 against a real Postgres container behind the router (`dist/main.js`, its own
 * process). Opens CONNECTIONS (default 2000) idle TCP connections to a route whose record
 * carries `limits.maxSessions` = LIMIT (default 50), spread over SOURCES (default 40)
 * loopback source addresses so the route limit, not the per-client one, is what binds
 * (SOURCES=1: one attacking address, the per-client limit binds), BATCH (default 100) at a time;
 * then reports how many reached the backend, whether a valid user still gets a query
 * through, the Postgres container's memory and the router's RSS before and after.
 *
 * Needs the catalog's Postgres image (`sf images build`) and a
 * built router (`npx tsc -b`). Cleans up the container, the router, etcd and its files.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  Catalog,
  connectEtcd,
  freePort,
  json,
  Keyspace,
  type RouteRecord,
  startEtcd,
  waitFor,
} from '@service-foundry/core';
import pg from 'pg';

const run = promisify(execFile);
const connections = Number(process.env.CONNECTIONS ?? 2000);
const limit = Number(process.env.LIMIT ?? 50);
const sources = Number(process.env.SOURCES ?? 40);
const batch = Number(process.env.BATCH ?? 100);
const image = (await Catalog.load()).byServiceName('postgres')?.runtime.image ?? 'no postgres in the catalog';
const mainJs = fileURLToPath(new URL('../dist/main.js', import.meta.url));

function rssMb(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('VmRSS:'));
  return Math.round(Number(line?.split(/\s+/)[1] ?? Number.NaN) / 1024);
}

/** Established TCP connections whose peer is `port` on this host: the router's upstreams. */
async function upstreamCount(port: number): Promise<number> {
  const { stdout } = await run('ss', ['-Htn', 'state', 'established', `( dport = :${port} )`]);
  return stdout.split('\n').filter((l) => l.trim()).length;
}

/** Polls `probe` until it returns the same value twice `stableMs` apart. */
async function settled(probe: () => Promise<number>, stableMs = 1500): Promise<number> {
  let last = await probe();
  let since = Date.now();
  return waitFor(
    async () => {
      const now = await probe();
      if (now !== last) {
        last = now;
        since = Date.now();
        return undefined;
      }
      return Date.now() - since >= stableMs ? now : undefined;
    },
    { description: 'connection count to settle', timeoutMs: 120_000, intervalMs: 250 },
  );
}

async function validUserQuery(port: number, password: string): Promise<string> {
  const client = new pg.Client({
    host: '127.0.0.1',
    port,
    user: 'postgres',
    password,
    database: 'sf',
    connectionTimeoutMillis: 10_000,
  });
  try {
    await client.connect();
    const res = await client.query('SELECT 1 AS ok');
    return `ok (${JSON.stringify(res.rows[0])})`;
  } catch (error) {
    return `FAILED: ${(error as Error).message}`;
  } finally {
    await client.end().catch(() => {});
  }
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'sf-idle-flood-'));
  const name = `sf-bench-flood-${randomBytes(4).toString('hex')}`;
  const password = randomBytes(16).toString('hex');
  const sockets: Socket[] = [];
  let router: ChildProcess | undefined;
  let etcdStop: (() => Promise<void>) | undefined;
  try {
    // The password goes through a 0600 env file, never a command line.
    await writeFile(join(dir, 'pg.env'), `POSTGRES_PASSWORD=${password}\n`, { mode: 0o600 });
    await run('docker', [
      'run',
      '-d',
      '--name',
      name,
      '--memory',
      '512m',
      '--env-file',
      join(dir, 'pg.env'),
      '-e',
      'PGDATA=/var/lib/postgresql/data/pgdata',
      '-e',
      'SF_DATABASE=sf',
      '-p',
      '127.0.0.1::5432',
      image,
    ]);
    const { stdout: portLine } = await run('docker', ['port', name, '5432/tcp']);
    const pgPort = Number(portLine.trim().split('\n')[0]?.split(':').pop());
    await waitFor(
      async () =>
        (await run('docker', ['exec', name, 'pg_isready', '-q', '-h', '127.0.0.1', '-U', 'postgres'])) && true,
      { description: 'postgres ready', timeoutMs: 120_000, intervalMs: 500 },
    );

    const etcd = await startEtcd({ dataDir: join(dir, 'etcd') });
    etcdStop = () => etcd.stop();
    const root = '/bench';
    const routerPort = await freePort();
    await writeFile(join(dir, 'router.json'), JSON.stringify({ etcdEndpoints: [etcd.endpoint], keyspaceRoot: root }));
    router = spawn(process.execPath, [mainJs, '--config', join(dir, 'router.json')], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, SF_LOG_LEVEL: 'warn' },
    });
    router.stdout?.resume();
    const pid = router.pid ?? 0;
    const client = connectEtcd({ endpoints: [etcd.endpoint] });
    const route: RouteRecord = {
      instanceId: 'pg-flood',
      protocol: 'tcp',
      port: routerPort,
      target: { host: '127.0.0.1', port: pgPort },
      epoch: 1,
      limits: { maxSessions: limit },
    };
    await client.put(new Keyspace(root).route(route.instanceId)).value(json(route));
    client.close();
    await waitFor(() => validUserQuery(routerPort, password).then((r) => r.startsWith('ok')), {
      description: 'route serving',
      timeoutMs: 30_000,
      intervalMs: 200,
    });
    const rssBefore = rssMb(pid);

    let errors = 0;
    let closed = 0;
    const started = Date.now();
    const open = (i: number) =>
      new Promise<void>((resolve) => {
        const socket = connect({ host: '127.0.0.1', port: routerPort, localAddress: `127.0.0.${2 + (i % sources)}` });
        sockets.push(socket);
        socket.once('connect', () => resolve());
        socket.once('close', () => {
          closed += 1;
          resolve();
        });
        // A refusal is a reset: ECONNRESET here.
        socket.on('error', () => {
          errors += 1;
        });
      });
    // In batches: 2000 SYNs at once overflow the listen backlog (511), and the kernel then
    // leaves clients that think they are connected but never reach the router at all.
    for (let i = 0; i < connections; i += batch) {
      await Promise.all(Array.from({ length: Math.min(batch, connections - i) }, (_, j) => open(i + j)));
    }
    const openMs = Date.now() - started;
    // Connections the kernel completed while the accept queue was full reach the router
    // only as their ACKs are retried: wait until both counts hold still.
    const openClients = () => sockets.filter((s) => !s.destroyed).length;
    await settled(async () => (await upstreamCount(pgPort)) * 100_000 + openClients(), 3000);
    const reached = await upstreamCount(pgPort);
    const stillOpen = openClients();
    const closedAtMeasure = closed;
    const errorsAtMeasure = errors;
    const rssAfter = rssMb(pid);
    const valid = await validUserQuery(routerPort, password);
    const { stdout: mem } = await run('docker', ['stats', '--no-stream', '--format', '{{.MemUsage}}', name]);
    const { stdout: state } = await run('docker', [
      'inspect',
      '-f',
      '{{.State.Status}} oom={{.State.OOMKilled}}',
      name,
    ]);

    console.log(
      JSON.stringify(
        {
          connections,
          routeLimit: limit,
          sourceAddresses: sources,
          openedInMs: openMs,
          reachedBackend: reached,
          clientSocketsStillOpen: stillOpen,
          clientSocketsClosed: closedAtMeasure,
          clientSocketErrors: errorsAtMeasure,
          validUserDuringFlood: valid,
          postgresMemory: mem.trim(),
          postgresState: state.trim(),
          routerRssMbBefore: rssBefore,
          routerRssMbAfter: rssAfter,
        },
        null,
        2,
      ),
    );
  } finally {
    for (const socket of sockets) socket.destroy();
    if (router && router.exitCode === null) {
      const exited = new Promise((resolve) => router?.once('exit', resolve));
      router.kill('SIGTERM');
      await exited;
    }
    await run('docker', ['rm', '-f', '-v', name]).catch(() => {});
    await etcdStop?.();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
