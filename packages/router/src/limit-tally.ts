import type { Logger } from '@service-foundry/core';
import type { LimitReason } from './admission.js';

/** Sessions refused per limit, and closed for idling, since the route (or port) appeared. */
export interface LimitCounters {
  routeLimit: number;
  clientLimit: number;
  fdBudget: number;
  idleTimeout: number;
}

/**
 * The scope of what the HTTP port refuses before it has read a Host header. Not a valid
 * instance id (those are key segments), so it never collides with a route.
 */
export const httpPortScope = '(http port)';

const zero = (): LimitCounters => ({ routeLimit: 0, clientLimit: 0, fdBudget: 0, idleTimeout: 0 });

/**
 * Counts refusals and idle closures per scope (instance id or {@link httpPortScope}) for
 * the status, and logs them as one line per scope and reason per interval, with the count:
 * a flood of refused connections costs a few log lines, not one per connection.
 */
export class LimitTally {
  readonly #totals = new Map<string, LimitCounters>();
  /** Counts not logged yet: scope → reason → count. */
  #pending = new Map<string, Map<LimitReason, number>>();
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly log: Logger,
    private readonly intervalMs: number,
    /** Told of every count (metrics). @default undefined */
    private readonly onCount?: (scope: string, reason: LimitReason) => void,
  ) {}

  /** Counts `times` sessions refused or closed for `reason` (an HAProxy route reports them in batches). */
  count(scope: string, reason: LimitReason, times = 1): void {
    for (let counted = 0; counted < times; counted += 1) this.onCount?.(scope, reason);
    let totals = this.#totals.get(scope);
    if (!totals) {
      totals = zero();
      this.#totals.set(scope, totals);
    }
    totals[reason] += times;
    let pending = this.#pending.get(scope);
    if (!pending) {
      pending = new Map();
      this.#pending.set(scope, pending);
    }
    pending.set(reason, (pending.get(reason) ?? 0) + times);
    if (!this.#timer) {
      // One timer for the whole router, running only while there is something to report.
      this.#timer = setInterval(() => this.flush(), this.intervalMs);
      this.#timer.unref();
    }
  }

  /** A copy of the counters of `scope` (all zero when nothing happened). */
  counters(scope: string): LimitCounters {
    return { ...(this.#totals.get(scope) ?? zero()) };
  }

  /** Drops the totals of a route that is gone; what is pending is still logged. */
  forget(scope: string): void {
    this.#totals.delete(scope);
  }

  /** Logs what is pending; stops the timer when there was nothing. */
  flush(): void {
    const pending = this.#pending;
    if (pending.size === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
      return;
    }
    this.#pending = new Map();
    for (const [scope, reasons] of pending) {
      for (const [reason, count] of reasons) {
        const fields = { scope, reason, count, intervalMs: this.intervalMs };
        if (reason === 'idleTimeout') this.log.info(fields, 'idle sessions closed');
        else this.log.warn(fields, 'sessions refused: limit reached');
      }
    }
  }

  /** Logs what is pending and stops the timer. */
  close(): void {
    this.flush();
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
