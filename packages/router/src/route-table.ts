import type { RouteRecord } from '@service-foundry/core';
import { parseRouteRecord, sameRoute } from './route-record.js';

/** What applying one etcd change to the table means for the data path. */
export type RouteChange =
  | { kind: 'set'; previous: RouteRecord | undefined; route: RouteRecord }
  | { kind: 'delete'; previous: RouteRecord }
  | { kind: 'unchanged' }
  | { kind: 'rejected'; instanceId: string; reason: string; stale: boolean };

/**
 * The routes the router currently serves, one per instance. It refuses a write whose epoch
 * is lower than the one applied (a delayed or replayed write from before a failover must
 * never re-point clients at a demoted primary) and invalid records (the previous route
 * stays in force).
 */
export class RouteTable {
  readonly #routes = new Map<string, RouteRecord>();
  #byHostname = new Map<string, RouteRecord>();
  #hostnameConflicts = new Map<string, string>();

  /** Applies the value now stored for `instanceId` (`undefined`: the key was deleted). */
  offer(instanceId: string, value: unknown): RouteChange {
    const previous = this.#routes.get(instanceId);
    if (value === undefined) {
      if (!previous) return { kind: 'unchanged' };
      this.#routes.delete(instanceId);
      this.#reindexHostnames();
      return { kind: 'delete', previous };
    }
    let route: RouteRecord;
    try {
      route = parseRouteRecord(instanceId, value);
    } catch (error) {
      return { kind: 'rejected', instanceId, reason: (error as Error).message, stale: false };
    }
    if (previous && route.epoch < previous.epoch) {
      return {
        kind: 'rejected',
        instanceId,
        reason: `ignored stale route: epoch ${route.epoch} is older than the applied epoch ${previous.epoch}`,
        stale: true,
      };
    }
    if (previous && sameRoute(previous, route)) return { kind: 'unchanged' };
    this.#routes.set(instanceId, route);
    this.#reindexHostnames();
    return { kind: 'set', previous, route };
  }

  get(instanceId: string): RouteRecord | undefined {
    return this.#routes.get(instanceId);
  }

  get size(): number {
    return this.#routes.size;
  }

  all(): IterableIterator<RouteRecord> {
    return this.#routes.values();
  }

  /** The HTTP route serving `hostname` (already lower-cased, without port). */
  byHostname(hostname: string): RouteRecord | undefined {
    return this.#byHostname.get(hostname);
  }

  /** Why an HTTP route is not served although it is valid (its host name is taken). */
  hostnameConflict(instanceId: string): string | undefined {
    return this.#hostnameConflicts.get(instanceId);
  }

  // The first route (in order of arrival) keeps a contested host name, so a newcomer can
  // never hijack traffic already flowing to another instance.
  #reindexHostnames(): void {
    const byHostname = new Map<string, RouteRecord>();
    const conflicts = new Map<string, string>();
    for (const route of this.#routes.values()) {
      if (route.protocol !== 'http' || !route.hostname) continue;
      const owner = byHostname.get(route.hostname);
      if (owner) conflicts.set(route.instanceId, `hostname ${route.hostname} is already routed to ${owner.instanceId}`);
      else byHostname.set(route.hostname, route);
    }
    this.#byHostname = byHostname;
    this.#hostnameConflicts = conflicts;
  }
}
