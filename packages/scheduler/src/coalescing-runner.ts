import type { Logger } from '@service-foundry/core';

/**
 * Runs `work` when poked, never twice at once; pokes that arrive during a run cause
 * exactly one more run. Also runs every `intervalMs` so that missed events converge.
 */
export class CoalescingRunner {
  #running: Promise<void> | undefined;
  #again = false;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(
    private readonly name: string,
    private readonly work: () => Promise<void>,
    private readonly intervalMs: number,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.#timer = setInterval(() => this.poke(), this.intervalMs);
    this.poke();
  }

  poke(): void {
    if (this.#stopped) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = this.#loop().finally(() => {
      this.#running = undefined;
    });
  }

  async #loop(): Promise<void> {
    do {
      this.#again = false;
      try {
        await this.work();
      } catch (error) {
        this.log.warn({ err: error }, `${this.name} pass failed; retrying on the next pass`);
      }
    } while (this.#again && !this.#stopped);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    await this.#running;
  }
}
