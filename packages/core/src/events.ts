import { randomBytes } from 'node:crypto';
import type { Etcd3 } from 'etcd3';
import type { Keyspace } from './keyspace.js';
import type { EventRecord } from './records/index.js';

/** Events expire on their own; one lease per hour-long window keeps that cheap. */
const eventTtlSeconds = 24 * 3600;
const leaseWindowMs = 3600_000;

/** Appends operator-visible events (`sf events`) to etcd. Failures are never fatal. */
export class EventLog {
  #lease: { id: Promise<string>; grantedAt: number } | undefined;

  constructor(
    private readonly client: Etcd3,
    private readonly keys: Keyspace,
    private readonly source: string,
  ) {}

  async record(kind: string, message: string, about: { instanceId?: string; node?: string } = {}): Promise<void> {
    const at = Date.now();
    const event: EventRecord = { at: new Date(at).toISOString(), kind, message, source: this.source, ...about };
    try {
      const leaseId = await this.#leaseId(at);
      await this.client
        .put(this.keys.event(at, randomBytes(4).toString('hex')))
        .value(JSON.stringify(event))
        .lease(leaseId)
        .exec();
    } catch {
      // An event that cannot be written is not worth failing the work it describes.
    }
  }

  #leaseId(now: number): Promise<string> {
    if (!this.#lease || now - this.#lease.grantedAt > leaseWindowMs) {
      const lease = this.client.lease(eventTtlSeconds, { autoKeepAlive: false });
      this.#lease = { id: lease.grant(), grantedAt: now };
    }
    return this.#lease.id;
  }
}
