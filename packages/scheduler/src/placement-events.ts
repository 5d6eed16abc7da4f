import type { Etcd3 } from '@service-foundry/core';

/** Events expire after a day, like the EventLog's. */
const eventTtlSeconds = 24 * 3600;
const leaseWindowMs = 3600_000;

/**
 * The lease placement events are written under. Placement events go into the placement
 * transaction itself (no request of their own), so they need a lease id at hand; one
 * lease per hour-long window keeps that to one grant an hour.
 */
export class PlacementEventLease {
  #current: { id: Promise<string>; grantedAt: number } | undefined;

  constructor(private readonly client: Etcd3) {}

  id(now = Date.now()): Promise<string> {
    if (!this.#current || now - this.#current.grantedAt > leaseWindowMs) {
      const lease = this.client.lease(eventTtlSeconds, { autoKeepAlive: false });
      const id = lease.grant();
      this.#current = { id, grantedAt: now };
      // A failed grant is retried on the next call rather than remembered.
      id.catch(() => {
        if (this.#current?.id === id) this.#current = undefined;
      });
    }
    return this.#current.id;
  }
}
