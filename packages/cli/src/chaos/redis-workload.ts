import { createClient } from 'redis';
import { DirectWriter, firstReachable, type Workload, WorkloadLoop, type WriteOutcome } from './workload.js';

export interface RedisTarget {
  host: string;
  /** Every router, tried in order when connecting (a binding's `hosts`). @default [host] */
  hosts?: readonly string[] | undefined;
  port: number;
  username: string;
  password: string;
  /** The cluster CA (PEM) that signed the server's certificate; absent: plain TCP. */
  ca?: string | undefined;
}

function connect(target: RedisTarget, timeoutMs: number, host = target.host) {
  const socket = { host, port: target.port, connectTimeout: timeoutMs, reconnectStrategy: false as const };
  return createClient({
    socket: target.ca === undefined ? socket : { ...socket, tls: true as const, ca: target.ca },
    username: target.username,
    password: target.password,
    RESP: 2,
  });
}

type RedisClient = ReturnType<typeof connect>;

/**
 * Numbered SETs. Where the durability promises a copy on a replica, each SET is followed by
 * `WAIT 1 <timeout>` and counts as acknowledged only when a replica has it.
 */
export class RedisWorkload extends WorkloadLoop<RedisClient> implements Workload {
  constructor(
    private readonly target: RedisTarget,
    private readonly run: string,
    private readonly waitForReplica: boolean,
  ) {
    super();
  }

  #key(id: number): string {
    return `sf-chaos:${this.run}:${id}`;
  }

  async prepare(): Promise<void> {
    await this.#once(async () => undefined);
  }

  async readBack(): Promise<Set<number>> {
    return this.#once(async (client) => {
      const found = new Set<number>();
      for await (const keys of client.scanIterator({ MATCH: `sf-chaos:${this.run}:*`, COUNT: 1000 })) {
        for (const key of Array.isArray(keys) ? keys : [keys]) found.add(Number(String(key).split(':').at(-1)));
      }
      return found;
    });
  }

  async cleanUp(): Promise<void> {
    const ids = await this.readBack();
    await this.#once(async (client) => {
      for (const id of ids) await client.del(this.#key(id));
    });
  }

  async #once<T>(work: (client: RedisClient) => Promise<T>): Promise<T> {
    const client = await this.#open(10_000);
    try {
      return await work(client);
    } finally {
      await client.quit().catch(() => undefined);
    }
  }

  protected async connect(): Promise<RedisClient> {
    return this.#open(1000);
  }

  #open(timeoutMs: number): Promise<RedisClient> {
    return firstReachable(this.target.hosts ?? [this.target.host], async (host) => {
      const client = connect(this.target, timeoutMs, host);
      client.on('error', () => undefined);
      await client.connect();
      return client;
    });
  }

  protected async write(client: RedisClient, id: number): Promise<WriteOutcome> {
    if ((await client.set(this.#key(id), String(Date.now()))) !== 'OK') return { kind: 'refused' };
    if (this.waitForReplica && (await client.wait(1, 2000)) < 1) {
      return { kind: 'in-doubt', why: 'reached no replica within 2 s' };
    }
    return { kind: 'acknowledged' };
  }

  /** An error reply (READONLY, NOPERM, OOM…) says the SET did not happen. */
  protected isRefusal(error: unknown): boolean {
    return /^(READONLY|NOPERM|OOM|ERR|WRONGTYPE|MISCONF)/.test((error as Error).message);
  }

  protected async close(client: RedisClient): Promise<void> {
    await client.disconnect();
  }
}

/** Writes straight to one server (a replica's own host and port, in `target`), bypassing the router. */
export class RedisDirectProbe extends DirectWriter<RedisClient> {
  constructor(
    private readonly target: RedisTarget,
    private readonly run: string,
  ) {
    super();
  }

  protected async connect(): Promise<RedisClient> {
    const client = connect(this.target, 500);
    client.on('error', () => undefined);
    await client.connect();
    return client;
  }

  protected async write(client: RedisClient, id: number): Promise<boolean> {
    return (await client.set(`sf-chaos:${this.run}:-${id}`, 'direct')) === 'OK';
  }

  protected async disconnect(client: RedisClient): Promise<void> {
    await client.disconnect();
  }
}
