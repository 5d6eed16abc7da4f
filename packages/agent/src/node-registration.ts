import { setTimeout as delay } from 'node:timers/promises';
import type { Etcd3, EventLog, Keyspace, Logger, NodeRecord } from '@service-foundry/core';
import { json } from '@service-foundry/core';
import { NotRegisteredError } from './errors.js';
import { LeaseRenewer, renewerTiming } from './lease-renewer.js';

type Lease = ReturnType<Etcd3['lease']>;

export interface NodeRegistrationOptions {
  client: Etcd3;
  keys: Keyspace;
  leaseTtlSeconds: number;
  log: Logger;
  events: EventLog;
}

/** What the node announces; `startedAt` is added by the registration. */
export type NodeAnnouncement = Omit<NodeRecord, 'startedAt'>;

/**
 * Keeps `nodes/<node>` alive under a lease: the node exists for the cluster exactly as
 * long as this agent renews it. When etcd reports the lease gone (expired while the
 * process was paused or cut off, or revoked by an operator), a new lease is granted and
 * the node registered again.
 */
export class NodeRegistration {
  readonly #options: NodeRegistrationOptions;
  readonly #startedAt = new Date().toISOString();
  #lease: Lease | undefined;
  #renewer: LeaseRenewer | undefined;
  #leaseId: Promise<string> | undefined;
  #record: NodeAnnouncement | undefined;
  readonly #reRegisteredHooks: Array<() => Promise<void>> = [];
  readonly #lostHooks: Array<() => void> = [];
  #recovering = false;
  #stopped = false;

  constructor(options: NodeRegistrationOptions) {
    this.#options = options;
  }

  /**
   * When the lease was last confirmed by etcd, as the time the confirmed request was
   * *sent* (ms since the epoch): the lease is certainly valid until this plus the TTL.
   * Self-fencing uses this rather than etcd3's `lost` event, which fires only ~2×TTL late.
   */
  get lastRenewedAt(): number {
    // A replaced lease's renewer stops first, so this is always the current lease's figure.
    return this.#renewer?.lastConfirmedSentAt ?? 0;
  }

  get ttlSeconds(): number {
    return this.#options.leaseTtlSeconds;
  }

  /** The current lease id (waits while a lost lease is being replaced). */
  leaseId(): Promise<string> {
    if (!this.#leaseId) return Promise.reject(new NotRegisteredError());
    return this.#leaseId;
  }

  /** Runs `hook` after a lost lease was replaced, to put the node's other keys under the new one. */
  afterReRegistering(hook: () => Promise<void>): void {
    this.#reRegisteredHooks.push(hook);
  }

  /** Runs `hook` at once when etcd reports the lease gone, before anything is registered again. */
  onLeaseLost(hook: () => void): void {
    this.#lostHooks.push(hook);
  }

  /** Registers the node; from then on it exists for the cluster as long as the lease lives. */
  async start(record: NodeAnnouncement): Promise<void> {
    this.#record = record;
    await this.#register();
    this.#options.log.info(
      { lease: await this.leaseId(), ttlSeconds: this.#options.leaseTtlSeconds },
      'node registered',
    );
  }

  /** Revokes the lease: the node key and every status under it vanish at once. */
  async stop(): Promise<void> {
    this.#stopped = true;
    const lease = this.#lease;
    this.#lease = undefined;
    this.#renewer?.stop();
    await lease?.revoke().catch((error: unknown) => {
      this.#options.log.warn({ err: error }, 'revoking the node lease failed; it will expire on its own');
    });
  }

  async #register(): Promise<void> {
    const { client, keys, leaseTtlSeconds } = this.#options;
    const record = this.#announcement();
    const requestedAt = Date.now();
    const lease = client.lease(leaseTtlSeconds, { autoKeepAlive: false });
    const granted = lease.grant();
    // Hand out the new id at once, so status writes queue on it rather than on the dead one.
    this.#leaseId = granted;
    granted.catch(() => undefined);
    let id: string;
    try {
      id = await granted;
      const value: NodeRecord = { ...record, startedAt: this.#startedAt };
      await client.put(keys.node(record.name)).value(json(value)).lease(id).exec();
    } catch (error) {
      lease.release();
      throw error;
    }
    if (this.#stopped) {
      await lease.revoke().catch(() => undefined);
      return;
    }
    this.#lease = lease;
    this.#renewer?.stop();
    this.#renewer = new LeaseRenewer(lease, renewerTiming(leaseTtlSeconds), this.#options.log, requestedAt);
    this.#renewer.start();
    lease.on('lost', (error) => {
      if (lease === this.#lease) this.#recover(id, error);
    });
  }

  #recover(lostLease: string, reason: Error): void {
    if (this.#stopped || this.#recovering) return;
    this.#recovering = true;
    const { log, events, leaseTtlSeconds } = this.#options;
    for (const hook of this.#lostHooks) hook();
    const record = this.#announcement();
    log.warn({ lease: lostLease, reason: reason.message }, 'node lease lost; registering again');
    const retryMs = Math.min(1000, (leaseTtlSeconds * 1000) / 3);
    const loop = async () => {
      while (!this.#stopped) {
        try {
          await this.#register();
          if (this.#stopped) return;
          for (const hook of this.#reRegisteredHooks) await hook();
          const lease = await this.leaseId();
          log.warn({ lease, lostLease }, 'node registered again under a new lease');
          await events.record(
            'node-lease-lost',
            `node ${record.name} lost lease ${lostLease} (${reason.message}); registered again under lease ${lease}`,
            { node: record.name },
          );
          return;
        } catch (error) {
          log.warn({ err: error }, 'registering again failed; retrying');
          await delay(retryMs);
        }
      }
    };
    void loop().finally(() => {
      this.#recovering = false;
    });
  }

  #announcement(): NodeAnnouncement {
    if (!this.#record) throw new NotRegisteredError();
    return this.#record;
  }
}
