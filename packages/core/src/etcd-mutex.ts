import type { Etcd3, Lease } from 'etcd3';

/**
 * Non-blocking etcd mutexes that share one session lease, like etcd's
 * `concurrency.Mutex`: acquiring is one transaction, releasing one delete. If the process
 * dies or pauses past the TTL, the lease expires and its locks with it.
 *
 * Holding a lock is never, alone, permission to write (I2): callers still compare the
 * revisions of what they read in the same transaction that writes.
 */
export class EtcdMutexSession {
  #lease: Lease;
  #leaseId: Promise<string>;

  /**
   * @param owner recorded as the lock value, for operators reading etcd
   * @param ttlSeconds lease TTL; locks vanish this long after the holder stops renewing
   */
  constructor(
    private readonly client: Etcd3,
    readonly owner: string,
    ttlSeconds = 10,
  ) {
    this.#lease = client.lease(ttlSeconds, { autoKeepAlive: true });
    this.#leaseId = this.#lease.grant();
    this.#leaseId.catch(() => undefined);
  }

  /** True when the lock at `key` is now ours. */
  async tryAcquire(key: string): Promise<boolean> {
    const leaseId = await this.#leaseId;
    const res = await this.client
      .if(key, 'Create', '==', 0)
      .then(this.client.put(key).value(this.owner).lease(leaseId))
      .commit();
    return res.succeeded;
  }

  /** Releases `key` if this session still holds it. */
  async release(key: string): Promise<void> {
    const leaseId = await this.#leaseId;
    await this.client.if(key, 'Lease', '==', leaseId).then(this.client.delete().key(key)).commit();
  }

  async close(): Promise<void> {
    await this.#lease.revoke().catch(() => undefined);
  }
}
