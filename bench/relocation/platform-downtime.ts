import { cp } from 'node:fs/promises';
import { join } from 'node:path';
import { waitFor } from '@service-foundry/core';
import { startCluster } from '@service-foundry/test-support/cluster';
import { perRouterUris, withClusterCa } from '@service-foundry/test-support/cluster-ca';
import { docker, volumesOf } from '@service-foundry/test-support/docker';
import { psql } from '@service-foundry/test-support/psql';
import pg from 'pg';
import { run } from './shell.js';
import { makeGibVolume, outlastRacyWindow } from './volume-data.js';

export interface PlatformRelocationFigures {
  /** What a client sees through the router: the longest time without a successful query. */
  clientDowntimeSeconds: number;
  /** The controller's figure: source told to stop → the route names the target. */
  controllerDowntimeSeconds: number;
  message: string;
  rows: string;
}

interface RelocationView {
  phase: string;
  message: string;
  downtimeMs?: number;
}

/**
 * A client that connects through the router and runs one query, over and over, each
 * attempt bounded by a short timeout; it remembers when queries succeeded.
 */
class Prober {
  readonly successes: number[] = [];
  #running = true;
  #loop: Promise<void> | undefined;

  constructor(private readonly uri: string) {}

  start(): void {
    this.#loop = (async () => {
      while (this.#running) {
        const client = new pg.Client({
          connectionString: withClusterCa(perRouterUris(this.uri)[0] as string),
          connectionTimeoutMillis: 500,
          query_timeout: 500,
        });
        // A session the stopping server terminates reports it as an event, not a rejection.
        client.on('error', () => undefined);
        try {
          await client.connect();
          await client.query('SELECT 1');
          this.successes.push(Date.now());
        } catch {
          // Expected while the service moves.
        } finally {
          await client.end().catch(() => undefined);
        }
      }
    })();
  }

  async stop(): Promise<void> {
    this.#running = false;
    await this.#loop;
  }

  /** The longest gap between two successful queries: the last success before, the first after. */
  longestGap(): { from: number; to: number } {
    let gap = { from: 0, to: 0 };
    for (let i = 1; i < this.successes.length; i++) {
      const from = this.successes[i - 1] as number;
      const to = this.successes[i] as number;
      if (to - from > gap.to - gap.from) gap = { from, to };
    }
    return gap;
  }
}

interface EventView {
  at: string;
  kind: string;
  message: string;
  instanceId?: string;
}

/**
 * Where the downtime went: the relocation's events from the stop on, and the client's
 * longest gap (its last success before, its first after), in ms after the stop.
 */
function printTimeline(
  log: (line: string) => void,
  events: EventView[],
  instanceId: string,
  gap: { from: number; to: number },
): void {
  const mine = events.filter((e) => e.instanceId === instanceId);
  const stop = mine.find((e) => e.kind === 'relocation-stopping');
  if (!stop) return;
  const t0 = Date.parse(stop.at);
  const lines = mine
    .filter((e) => Date.parse(e.at) >= t0)
    .map((e) => ({ at: Date.parse(e.at), text: `${e.kind}: ${e.message.slice(0, 110)}` }));
  lines.push({ at: gap.from, text: 'client: the last successful query before the longest gap' });
  lines.push({ at: gap.to, text: 'client: the first successful query after it' });
  for (const line of lines.sort((a, b) => a.at - b.at)) {
    log(`  +${String(line.at - t0).padStart(5)} ms  ${line.text}`);
  }
}

/**
 * The figure on the real platform: `sf up` with three simulated nodes, a Postgres
 * instance whose volume holds 1 GiB, ~10 MB of rows written while the pre-copy runs, then
 * `sf relocate` — downtime as seen by a client querying through the router.
 */
export async function measurePlatformRelocation(log: (line: string) => void): Promise<PlatformRelocationFigures> {
  const cluster = await startCluster(3);
  try {
    const created = await cluster.sf('create-service', 'postgres', 'small', 'bench');
    if (created.code !== 0) throw new Error(`create-service failed: ${created.stderr}`);
    const key = await cluster.sf('create-service-key', 'bench', 'bench', '--json');
    if (key.code !== 0) throw new Error(`create-service-key failed: ${key.stderr}`);
    const { uri } = JSON.parse(key.stdout) as { uri: string };
    const detail = JSON.parse((await cluster.sf('service', 'bench', '--json')).stdout) as {
      id: string;
      primary: { node: string };
    };
    const from = detail.primary.node;
    const to = ['node-1', 'node-2', 'node-3'].find((n) => n !== from) as string;
    const volume = (await volumesOf(detail.id)).find((v) => v.includes(`-${from}-`)) as string;
    const mountpoint = (await docker.getVolume(volume).inspect()).Mountpoint;
    log(`platform: writing 1 GiB beside the database in volume ${volume}`);
    await makeGibVolume(join(mountpoint, 'bulk'));
    // The bench's own 1 GiB of dirty pages must not be written back during the measurement:
    // every fsync (etcd's, Postgres's) would queue behind it.
    await run('sync', []);
    await outlastRacyWindow();
    const table = await psql(uri, 'CREATE TABLE items (id int PRIMARY KEY, payload text)');
    if (!table.ok) throw new Error(table.err);

    const prober = new Prober(uri);
    prober.start();
    await waitFor(() => prober.successes.length >= 20, {
      description: 'the prober through the router',
      timeoutMs: 30_000,
    });
    const requested = await cluster.sf('relocate', 'bench', '--to', to, '--no-wait');
    if (requested.code !== 0) throw new Error(`sf relocate failed: ${requested.stderr}`);
    // ~10 MB of rows while the pre-copy of the 1 GiB runs.
    const written = await psql(
      uri,
      'INSERT INTO items SELECT g, repeat(md5(random()::text), 8) FROM generate_series(1, 40000) g',
    );
    if (!written.ok) throw new Error(written.err);
    const done = await waitFor(
      async () => {
        const view = JSON.parse((await cluster.sf('service', 'bench', '--json')).stdout) as {
          relocation?: RelocationView | null;
        };
        const r = view.relocation;
        return r && (r.phase === 'done' || r.phase === 'failed') ? r : undefined;
      },
      { description: 'the relocation', timeoutMs: 300_000, intervalMs: 200 },
    );
    await waitFor(() => prober.successes.length > 0 && Date.now() - (prober.successes.at(-1) ?? 0) < 100, {
      description: 'queries through the router again',
      timeoutMs: 30_000,
    });
    await prober.stop();
    const gap = prober.longestGap();
    printTimeline(log, JSON.parse((await cluster.sf('events', '--json', '--limit', '200')).stdout), detail.id, gap);
    if (done.phase !== 'done') throw new Error(done.message);
    const rows = await psql(uri, 'SELECT count(*) FROM items');
    return {
      clientDowntimeSeconds: (gap.to - gap.from) / 1000,
      controllerDowntimeSeconds: (done.downtimeMs ?? Number.NaN) / 1000,
      message: done.message,
      rows: rows.out,
    };
  } finally {
    const keep = process.env.SF_BENCH_KEEP_LOGS;
    if (keep) await cp(join(cluster.home, 'logs'), keep, { recursive: true }).catch(() => undefined);
    await cluster.destroy();
  }
}
