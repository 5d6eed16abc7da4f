import pg from 'pg';
import { DirectWriter, firstReachable, type Workload, WorkloadLoop, type WriteOutcome } from './workload.js';

/** Postgres SQLSTATE classes that answer "this did not happen" (not a broken connection). */
const definiteRefusal = /^(23|25|42|53|54|55|57P0[1-3]|22)/;

function table(run: string): string {
  return `sf_chaos_${run}`;
}

/** Where and as whom to connect: a service key's fields (the CA verifies the server's name). */
export interface PostgresTarget {
  host: string;
  /** Every router, tried in order when connecting (a binding's `hosts`). @default [host] */
  hosts?: readonly string[] | undefined;
  port: number;
  database: string;
  username: string;
  password: string;
  /** The cluster CA (PEM); absent: no TLS. */
  ca?: string | undefined;
}

function clientConfig(
  target: PostgresTarget,
  host: string,
  connectTimeoutMs: number,
  queryTimeoutMs: number,
): pg.ClientConfig {
  return {
    host,
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
export class PostgresWorkload extends WorkloadLoop<pg.Client> implements Workload {
  /** Set by a NOTICE during the current write: the standby wait was cancelled. */
  #localOnly = false;

  constructor(
    private readonly target: PostgresTarget,
    private readonly run: string,
  ) {
    super();
  }

  async prepare(): Promise<void> {
    await this.#once(
      `CREATE TABLE IF NOT EXISTS ${table(this.run)} (id bigint PRIMARY KEY, at timestamptz DEFAULT now())`,
    );
  }

  async readBack(): Promise<Set<number>> {
    const rows = await this.#once<{ id: string }>(`SELECT id FROM ${table(this.run)}`);
    return new Set(rows.map((r) => Number(r.id)));
  }

  async cleanUp(): Promise<void> {
    await this.#once(`DROP TABLE IF EXISTS ${table(this.run)}`);
  }

  async #once<R extends pg.QueryResultRow>(sql: string): Promise<R[]> {
    const client = await firstReachable(this.target.hosts ?? [this.target.host], async (host) => {
      const c = new pg.Client(clientConfig(this.target, host, 10_000, 30_000));
      c.on('error', () => undefined);
      await c.connect();
      return c;
    });
    try {
      return (await client.query<R>(sql)).rows;
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  protected async connect(): Promise<pg.Client> {
    return firstReachable(this.target.hosts ?? [this.target.host], async (host) => {
      const client = new pg.Client(clientConfig(this.target, host, 1000, 5000));
      client.on('error', () => undefined);
      client.on('notice', (notice) => {
        if (/synchronous replication/i.test(notice.message ?? '')) this.#localOnly = true;
      });
      try {
        await client.connect();
      } catch (error) {
        await client.end().catch(() => undefined);
        throw error;
      }
      return client;
    });
  }

  protected async write(client: pg.Client, id: number): Promise<WriteOutcome> {
    this.#localOnly = false;
    await client.query(`INSERT INTO ${table(this.run)} (id) VALUES ($1)`, [id]);
    return this.#localOnly
      ? { kind: 'in-doubt', why: 'committed locally only (the standby wait was cancelled)' }
      : { kind: 'acknowledged' };
  }

  protected isRefusal(error: unknown): boolean {
    return definiteRefusal.test((error as { code?: string }).code ?? '');
  }

  protected async close(client: pg.Client): Promise<void> {
    await client.end();
  }
}

/**
 * Writes straight to one server (a replica's own host and port, in `target`), bypassing the
 * router. Its certificate names its node address, so name checks still hold.
 */
export class PostgresDirectProbe extends DirectWriter<pg.Client> {
  constructor(
    private readonly target: PostgresTarget,
    private readonly run: string,
  ) {
    super();
  }

  protected async connect(): Promise<pg.Client> {
    const client = new pg.Client(clientConfig(this.target, this.target.host, 500, 1000));
    client.on('error', () => undefined);
    await client.connect();
    return client;
  }

  protected async write(client: pg.Client, id: number): Promise<boolean> {
    // Negative ids: never sent by the workload, so they are told apart when read back.
    await client.query(`INSERT INTO ${table(this.run)} (id) VALUES ($1)`, [-id]);
    return true;
  }

  protected async disconnect(client: pg.Client): Promise<void> {
    await client.end();
  }
}
