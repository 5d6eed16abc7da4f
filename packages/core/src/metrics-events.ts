/**
 * Counts the operator events a component records, by kind, and lets a component's metrics
 * react to particular kinds (a failover's duration runs from `primary-lost` to
 * `failover-promote`). Events are already the one place where every component says what
 * happened, so counting them here needs no second set of hooks in the code that acts.
 */

import type { Etcd3 } from 'etcd3';
import { Counter, type Registry } from 'prom-client';
import { EventLog } from './events.js';
import type { Keyspace } from './keyspace.js';

/** Called for every event recorded, before it is written. */
export type EventObserver = (kind: string, about: { instanceId?: string; node?: string }) => void;

/** An {@link EventLog} that also counts `sf_events_total{kind}` and tells observers. */
export class CountingEventLog extends EventLog {
  readonly #counter: Counter<'kind'>;
  readonly #observers: EventObserver[] = [];

  constructor(client: Etcd3, keys: Keyspace, source: string, registry: Registry) {
    super(client, keys, source);
    this.#counter =
      (registry.getSingleMetric('sf_events_total') as Counter<'kind'> | undefined) ??
      new Counter({
        name: 'sf_events_total',
        help: 'Operator events recorded by this process (sf events), by kind.',
        labelNames: ['kind'],
        registers: [registry],
      });
  }

  observe(observer: EventObserver): void {
    this.#observers.push(observer);
  }

  override async record(
    kind: string,
    message: string,
    about: { instanceId?: string; node?: string } = {},
  ): Promise<void> {
    this.#counter.inc({ kind });
    for (const observer of this.#observers) observer(kind, about);
    await super.record(kind, message, about);
  }
}
