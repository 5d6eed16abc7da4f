import { setTimeout as delay } from 'node:timers/promises';
import pg from 'pg';
import { perRouterUris, withClusterCa } from './cluster-ca.js';

export interface Ack {
  id: number;
  at: number;
}

/** The longest pause between consecutive acknowledged writes, counting those at or after `from` (ms). */
export function longestGapMs(acked: ReadonlyArray<{ at: number }>, from: number): number {
  let gap = 0;
  let previous: number | undefined;
  for (const { at } of acked) {
    if (previous !== undefined && at >= from) gap = Math.max(gap, at - previous);
    previous = at;
  }
  return gap;
}

/**
 * Sends numbered single-row INSERTs through the router, one at a time, and records which
 * were acknowledged (the COMMIT returned). On any error it reconnects and goes on with the
 * next number: an unacknowledged write may or may not have happened, an acknowledged one
 * must survive (I4).
 */
export class Writer {
  readonly acked: Ack[] = [];
  readonly errors: Array<{ at: number; message: string }> = [];
  /** Each new session: when its connect began and when it was up (for traces). */
  readonly connects: Array<{ startedAt: number; connectedAt: number }> = [];
  /**
   * Numbers start at the current time in microseconds, so writers that take turns on one
   * table (one test after another) never reuse an id: a duplicate key is an error that is
   * retried, and a few hundred of them would stall the next writer for minutes.
   */
  #next = Date.now() * 1000;
  #running: Promise<void> | undefined;
  #stop = false;

  constructor(
    private readonly uri: string,
    private readonly table = 'writes',
  ) {}

  static async prepare(uri: string, table = 'writes'): Promise<void> {
    const client = await connectAny(uri, 5000);
    try {
      await client.query(`CREATE TABLE IF NOT EXISTS ${table} (id bigint PRIMARY KEY, at timestamptz DEFAULT now())`);
    } finally {
      await client.end();
    }
  }

  start(): void {
    this.#running = this.#loop();
  }

  async stop(): Promise<void> {
    this.#stop = true;
    await this.#running;
  }

  /** First acknowledgement at or after `t` (ms since epoch). */
  firstAckAfter(t: number): Ack | undefined {
    return this.acked.find((a) => a.at >= t);
  }

  async #loop(): Promise<void> {
    let client: pg.Client | undefined;
    // Postgres turns a cancelled wait for a synchronous standby into a WARNING, and the
    // INSERT "succeeds" with only a local copy: such a write is not acknowledged as durable.
    let localOnly = false;
    while (!this.#stop) {
      try {
        if (!client) {
          const startedAt = Date.now();
          client = await connectAny(this.uri, 1000, (c) =>
            c.on('notice', (notice) => {
              if (/synchronous replication/i.test(notice.message ?? '')) localOnly = true;
            }),
          );
          this.connects.push({ startedAt, connectedAt: Date.now() });
        }
        const id = this.#next++;
        localOnly = false;
        await client.query(`INSERT INTO ${this.table} (id) VALUES ($1)`, [id]);
        if (localOnly) throw new Error(`write ${id} committed locally only (synchronous replication wait cancelled)`);
        this.acked.push({ id, at: Date.now() });
      } catch (error) {
        this.errors.push({ at: Date.now(), message: (error as Error).message });
        await client?.end().catch(() => undefined);
        client = undefined;
        // Client retry pacing (not test synchronization): a real app backs off too.
        await delay(50);
      }
    }
    await client?.end().catch(() => undefined);
  }
}

/**
 * A session through the first router of `uri` that answers, in order, as libpq does with a
 * URI naming several hosts: an app whose router is gone goes on through the next one.
 */
export async function connectAny(
  uri: string,
  connectTimeoutMs: number,
  setUp: (client: pg.Client) => void = () => undefined,
): Promise<pg.Client> {
  let last: unknown;
  for (const one of perRouterUris(uri)) {
    const client = new pg.Client({
      connectionString: withClusterCa(one),
      connectionTimeoutMillis: connectTimeoutMs,
      query_timeout: 5000,
    });
    client.on('error', () => undefined);
    setUp(client);
    try {
      await client.connect();
      return client;
    } catch (error) {
      last = error;
      await client.end().catch(() => undefined);
    }
  }
  throw last;
}

/** Which acknowledged writes the instance no longer has. */
export async function lostWrites(uri: string, acked: readonly Ack[], table = 'writes'): Promise<number[]> {
  const client = await connectAny(uri, 5000);
  try {
    const { rows } = await client.query<{ id: string }>(`SELECT id FROM ${table}`);
    const present = new Set(rows.map((r) => Number(r.id)));
    return acked.filter((a) => !present.has(a.id)).map((a) => a.id);
  } finally {
    await client.end();
  }
}
