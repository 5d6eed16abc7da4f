import { setTimeout as delay } from 'node:timers/promises';

/**
 * A client writing numbered records through the router, one at a time, keeping what it
 * knows about each: acknowledged, refused (an answer that says it did not happen), or in
 * doubt (no answer). After healing, `readBack` lists what the instance holds.
 */
export interface Workload {
  readonly sent: number[];
  readonly acknowledged: Array<{ id: number; at: number }>;
  readonly refused: number[];
  /** The last few errors, for the summary. */
  readonly errors: Array<{ at: number; message: string }>;
  prepare(): Promise<void>;
  start(): void;
  stop(): Promise<void>;
  readBack(): Promise<Set<number>>;
  /** Removes what `prepare` made. */
  cleanUp(): Promise<void>;
}

/** A write tried directly at one replica's own address (the split-brain probe). */
export interface DirectProbe {
  /** Tries one write; true when the server accepted it. Never throws. */
  tryWrite(id: number): Promise<boolean>;
  close(): Promise<void>;
}

/** Client retry pacing after an error, as an application backs off; not synchronization. */
export const retryPauseMs = 50;

/**
 * Connects to the first of `hosts` that answers, in order, as libpq does with a host list:
 * a client whose router is gone goes on through the next one. Throws the last refusal.
 */
export async function firstReachable<Client>(
  hosts: readonly string[],
  open: (host: string) => Promise<Client>,
): Promise<Client> {
  let last: unknown = new Error('no host to connect to');
  for (const host of hosts) {
    try {
      return await open(host);
    } catch (error) {
      last = error;
    }
  }
  throw last;
}

/** What one write got: acknowledged, refused (surely not done) or in doubt (with why). */
export type WriteOutcome = { kind: 'acknowledged' } | { kind: 'refused' } | { kind: 'in-doubt'; why: string };

/**
 * The workload's loop, the same for every service: one connection, numbered writes one at
 * a time, a new connection after any error (a client cannot tell a dead server from a
 * slow one), each id recorded as acknowledged, refused or in doubt. A service supplies how
 * to connect, write and tell a refusal from a lost connection.
 */
export abstract class WorkloadLoop<Client> {
  readonly sent: number[] = [];
  readonly acknowledged: Array<{ id: number; at: number }> = [];
  readonly refused: number[] = [];
  readonly errors: Array<{ at: number; message: string }> = [];
  #next = 1;
  #stop = false;
  #running: Promise<void> | undefined;

  protected abstract connect(): Promise<Client>;
  protected abstract write(client: Client, id: number): Promise<WriteOutcome>;
  /** An error that is the server's answer that the write did not happen. */
  protected abstract isRefusal(error: unknown): boolean;
  protected abstract close(client: Client): Promise<void>;

  start(): void {
    this.#running = this.#loop();
  }

  async stop(): Promise<void> {
    this.#stop = true;
    await this.#running;
  }

  async #loop(): Promise<void> {
    let client: Client | undefined;
    while (!this.#stop) {
      let id: number | undefined;
      try {
        client ??= await this.connect();
        id = this.#next++;
        this.sent.push(id);
        const outcome = await this.write(client, id);
        if (outcome.kind === 'acknowledged') this.acknowledged.push({ id, at: Date.now() });
        else if (outcome.kind === 'refused') this.refused.push(id);
        else remember(this.errors, `write ${id} in doubt: ${outcome.why}`);
      } catch (error) {
        if (id !== undefined && this.isRefusal(error)) this.refused.push(id);
        remember(this.errors, (error as Error).message);
        if (client !== undefined) await this.close(client).catch(() => undefined);
        client = undefined;
        await delay(retryPauseMs);
      }
    }
    if (client !== undefined) await this.close(client).catch(() => undefined);
  }
}

/** Keeps the last `max` errors only. */
export function remember(errors: Array<{ at: number; message: string }>, message: string, max = 20): void {
  errors.push({ at: Date.now(), message });
  if (errors.length > max) errors.splice(0, errors.length - max);
}

/**
 * The split-brain probe's connection handling, the same for every service: connect on
 * first use, and after any failure drop the connection so the next try connects afresh.
 */
export abstract class DirectWriter<Client> implements DirectProbe {
  #client: Client | undefined;

  protected abstract connect(): Promise<Client>;
  /** One write; true when the server accepted it. */
  protected abstract write(client: Client, id: number): Promise<boolean>;
  protected abstract disconnect(client: Client): Promise<void>;

  async tryWrite(id: number): Promise<boolean> {
    try {
      this.#client ??= await this.connect();
      return await this.write(this.#client, id);
    } catch {
      await this.close();
      return false;
    }
  }

  async close(): Promise<void> {
    const client = this.#client;
    this.#client = undefined;
    if (client !== undefined) await this.disconnect(client).catch(() => undefined);
  }
}
