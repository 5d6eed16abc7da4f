import type { Logger } from '@service-foundry/core';

interface Entry {
  /** Another run was requested while one was in progress. */
  again: boolean;
  controller: AbortController;
  done: Promise<void>;
}

/**
 * Runs reconcile work per replica key, never two at once for one key, while different
 * keys proceed in parallel. Requests arriving during a run coalesce into one more run,
 * which reads the state afresh, so the last request always wins.
 */
export class ReplicaQueue {
  readonly #entries = new Map<string, Entry>();
  readonly #timers = new Map<string, NodeJS.Timeout>();
  #closed = false;

  constructor(
    private readonly work: (key: string, signal: AbortSignal) => Promise<void>,
    private readonly log: Logger,
  ) {}

  /**
   * Requests a run for `key`. With `interrupt`, a run in progress is asked to give up
   * its waits (readiness) so that, say, a removal does not queue behind a slow start.
   */
  schedule(key: string, options: { interrupt?: boolean } = {}): void {
    if (this.#closed) return;
    const current = this.#entries.get(key);
    if (current) {
      current.again = true;
      if (options.interrupt) current.controller.abort(new Error(`replica ${key} changed`));
      return;
    }
    const entry: Entry = { again: true, controller: new AbortController(), done: Promise.resolve() };
    this.#entries.set(key, entry);
    entry.done = this.#run(key, entry);
  }

  /** Requests a run after `ms`; a later request for the same key replaces an earlier one. */
  scheduleAfter(key: string, ms: number): void {
    if (this.#closed) return;
    clearTimeout(this.#timers.get(key));
    const timer = setTimeout(() => {
      this.#timers.delete(key);
      this.schedule(key);
    }, ms);
    timer.unref();
    this.#timers.set(key, timer);
  }

  /** Stops accepting work, interrupts runs in progress and waits for them to end. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const timer of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
    const running = [...this.#entries.values()];
    for (const entry of running) entry.controller.abort(new Error('agent stopping'));
    await Promise.all(running.map((entry) => entry.done));
  }

  async #run(key: string, entry: Entry): Promise<void> {
    // Let the caller finish registering the entry before the first run starts.
    await Promise.resolve();
    while (entry.again && !this.#closed) {
      entry.again = false;
      if (entry.controller.signal.aborted) entry.controller = new AbortController();
      try {
        await this.work(key, entry.controller.signal);
      } catch (error) {
        if (!entry.controller.signal.aborted) this.log.warn({ err: error, replica: key }, 'reconcile failed');
      }
    }
    this.#entries.delete(key);
  }
}
