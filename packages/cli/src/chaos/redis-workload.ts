import { setTimeout as delay } from 'node:timers/promises';
import { createClient } from 'redis';
import { type DirectProbe, remember, retryPauseMs, type Workload } from './workload.js';

export interface RedisTarget {
  host: string;
  port: number;
  username: string;
  password: string;
  /** The cluster CA (PEM) that signed the server's certificate; absent: plain TCP. */
  ca?: string | undefined;
}

function connect(target: RedisTarget, timeoutMs: number) {
  const socket = { host: target.host, port: target.port, connectTimeout: timeoutMs, reconnectStrategy: false as const };
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
export class RedisWorkload implements Workload {
  readonly sent: number[] = [];
  readonly acknowledged: Array<{ id: number; at: number }> = [];
  readonly refused: number[] = [];
  readonly errors: Array<{ at: number; message: string }> = [];
  #next = 1;
  #stop = false;
  #running: Promise<void> | undefined;

  constructor(
    private readonly target: RedisTarget,
    private readonly run: string,
    private readonly waitForReplica: boolean,
  ) {}

  #key(id: number): string {
    return `sf-chaos:${this.run}:${id}`;
  }

  async prepare(): Promise<void> {
    await this.#once(async () => undefined);
  }

  start(): void {
    this.#running = this.#loop();
  }

  async stop(): Promise<void> {
    this.#stop = true;
    await this.#running;
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
    const client = connect(this.target, 10_000);
    client.on('error', () => undefined);
    await client.connect();
    try {
      return await work(client);
    } finally {
      await client.quit().catch(() => undefined);
    }
  }

  async #loop(): Promise<void> {
    let client: RedisClient | undefined;
    while (!this.#stop) {
      let id: number | undefined;
      try {
        if (!client) {
          const fresh = connect(this.target, 1000);
          fresh.on('error', () => undefined);
          await fresh.connect();
          client = fresh;
        }
        id = this.#next++;
        this.sent.push(id);
        const reply = await client.set(this.#key(id), String(Date.now()));
        if (reply !== 'OK') {
          this.refused.push(id);
          continue;
        }
        if (this.waitForReplica && (await client.wait(1, 2000)) < 1) {
          remember(this.errors, `write ${id} reached no replica within 2 s`);
          continue;
        }
        this.acknowledged.push({ id, at: Date.now() });
      } catch (error) {
        const message = (error as Error).message;
        // An error reply (READONLY, NOPERM, OOM…) says the SET did not happen.
        if (id !== undefined && /^(READONLY|NOPERM|OOM|ERR|WRONGTYPE|MISCONF)/.test(message)) this.refused.push(id);
        remember(this.errors, message);
        await client?.disconnect().catch(() => undefined);
        client = undefined;
        await delay(retryPauseMs);
      }
    }
    await client?.quit().catch(() => undefined);
  }
}

export class RedisDirectProbe implements DirectProbe {
  #client: RedisClient | undefined;

  constructor(
    private readonly target: RedisTarget,
    private readonly run: string,
  ) {}

  async tryWrite(id: number): Promise<boolean> {
    try {
      if (!this.#client) {
        const client = connect(this.target, 500);
        client.on('error', () => undefined);
        await client.connect();
        this.#client = client;
      }
      return (await this.#client.set(`sf-chaos:${this.run}:-${id}`, 'direct')) === 'OK';
    } catch {
      await this.close();
      return false;
    }
  }

  async close(): Promise<void> {
    const client = this.#client;
    this.#client = undefined;
    await client?.disconnect().catch(() => undefined);
  }
}
