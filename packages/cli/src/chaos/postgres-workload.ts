import { setTimeout as delay } from 'node:timers/promises';
import pg from 'pg';
import { type DirectProbe, remember, retryPauseMs, type Workload } from './workload.js';

/** Postgres SQLSTATE classes that answer "this did not happen" (not a broken connection). */
const definiteRefusal = /^(23|25|42|53|54|55|57P0[1-3]|22)/;

function table(run: string): string {
  return `sf_chaos_${run}`;
}

/** Where and as whom to connect: a service key's fields (the CA verifies the server's name). */
export interface PostgresTarget {
  host: string;
  port: number;
  database: string;
  username: string;
  password: string;
  /** The cluster CA (PEM); absent: no TLS. */
  ca?: string | undefined;
}

function clientConfig(target: PostgresTarget, connectTimeoutMs: number, queryTimeoutMs: number): pg.ClientConfig {
  return {
    host: target.host,
    port: target.port,
    database: target.database,
    user: target.username,
    password: target.password,
    connectionTimeoutMillis: connectTimeoutMs,
    query_timeout: queryTimeoutMs,
    application_name: 'sf-chaos',
    ...(target.ca === undefined ? {} : { ssl: { ca: target.ca, rejectUnauthorized: true } }),
  };
}

/**
 * Numbered single-row transactions. With synchronous durability Postgres turns a cancelled
 * wait for the standby into a WARNING and reports success with only a local copy: such a
 * write is in doubt, never acknowledged.
 */
export class PostgresWorkload implements Workload {
  readonly sent: number[] = [];
  readonly acknowledged: Array<{ id: number; at: number }> = [];
  readonly refused: number[] = [];
  readonly errors: Array<{ at: number; message: string }> = [];
  #next = 1;
  #stop = false;
  #running: Promise<void> | undefined;

  constructor(
    private readonly target: PostgresTarget,
    private readonly run: string,
  ) {}

  async prepare(): Promise<void> {
    await this.#once(
      `CREATE TABLE IF NOT EXISTS ${table(this.run)} (id bigint PRIMARY KEY, at timestamptz DEFAULT now())`,
    );
  }

  start(): void {
    this.#running = this.#loop();
  }

  async stop(): Promise<void> {
    this.#stop = true;
    await this.#running;
  }

  async readBack(): Promise<Set<number>> {
    const rows = await this.#once<{ id: string }>(`SELECT id FROM ${table(this.run)}`);
    return new Set(rows.map((r) => Number(r.id)));
  }

  async cleanUp(): Promise<void> {
    await this.#once(`DROP TABLE IF EXISTS ${table(this.run)}`);
  }

  async #once<R extends pg.QueryResultRow>(sql: string): Promise<R[]> {
    const client = new pg.Client(clientConfig(this.target, 10_000, 30_000));
    client.on('error', () => undefined);
    await client.connect();
    try {
      return (await client.query<R>(sql)).rows;
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  async #loop(): Promise<void> {
    let client: pg.Client | undefined;
    let localOnly = false;
    while (!this.#stop) {
      let id: number | undefined;
      try {
        if (!client) {
          const fresh = new pg.Client(clientConfig(this.target, 1000, 5000));
          fresh.on('error', () => undefined);
          fresh.on('notice', (notice) => {
            if (/synchronous replication/i.test(notice.message ?? '')) localOnly = true;
          });
          await fresh.connect();
          client = fresh;
        }
        id = this.#next++;
        this.sent.push(id);
        localOnly = false;
        await client.query(`INSERT INTO ${table(this.run)} (id) VALUES ($1)`, [id]);
        if (localOnly) remember(this.errors, `write ${id} committed locally only (the standby wait was cancelled)`);
        else this.acknowledged.push({ id, at: Date.now() });
      } catch (error) {
        const code = (error as { code?: string }).code ?? '';
        if (id !== undefined && definiteRefusal.test(code)) this.refused.push(id);
        remember(this.errors, (error as Error).message);
        await client?.end().catch(() => undefined);
        client = undefined;
        await delay(retryPauseMs);
      }
    }
    await client?.end().catch(() => undefined);
  }
}

/**
 * Writes straight to one server (a replica's own host and port, in `target`), bypassing the
 * router. Its certificate names its node address, so name checks still hold.
 */
export class PostgresDirectProbe implements DirectProbe {
  #client: pg.Client | undefined;

  constructor(
    private readonly target: PostgresTarget,
    private readonly run: string,
  ) {}

  async tryWrite(id: number): Promise<boolean> {
    try {
      if (!this.#client) {
        const client = new pg.Client(clientConfig(this.target, 500, 1000));
        client.on('error', () => undefined);
        await client.connect();
        this.#client = client;
      }
      // Negative ids: never sent by the workload, so they are told apart when read back.
      await this.#client.query(`INSERT INTO ${table(this.run)} (id) VALUES ($1)`, [-id]);
      return true;
    } catch {
      await this.close();
      return false;
    }
  }

  async close(): Promise<void> {
    const client = this.#client;
    this.#client = undefined;
    await client?.end().catch(() => undefined);
  }
}
