import { type Etcd3, json, type Keyspace, type Logger, type SchedulerMemberRecord } from '@service-foundry/core';
import type { MemberList } from './ownership.js';

type Lease = ReturnType<Etcd3['lease']>;

/**
 * One lease per scheduler: its membership key and every node lock it takes live under it.
 * If the process dies or is paused past the TTL, etcd drops the lease and with it the
 * membership (others take over its share) and the locks (others may lock those nodes).
 * A paused scheduler that wakes up finds its lease gone and starts a new session; any
 * transaction it still had in flight compares a lock revision that no longer exists.
 *
 * The membership key is only ever created, never taken over: a scheduler restarted after a
 * crash finds its previous life's key until that lease expires, and waits for it. So it
 * comes back as the youngest member (a standby behind the one that took over), and two
 * processes given the same name by mistake never both believe they are that member.
 */
export class SchedulerSession {
  #lease: Lease | undefined;
  #leaseId: string | undefined;
  /** Revision of our membership put: once the watched copy is past it, our key must be there. */
  #memberRevision = 0n;
  #lost = false;
  #starting: Promise<string | undefined> | undefined;
  /** When we last logged that an earlier session holds our key (once per wait, not per pass). */
  #waitingSince: number | undefined;

  constructor(
    private readonly client: Etcd3,
    private readonly keys: Keyspace,
    private readonly record: SchedulerMemberRecord,
    private readonly ttlSeconds: number,
    private readonly log: Logger,
  ) {}

  get leaseId(): string | undefined {
    return this.#lost ? undefined : this.#leaseId;
  }

  /**
   * The current lease id, starting a new session first when there is none or it was lost;
   * undefined while another session still holds our membership key (tried again on the
   * next pass; its deletion pokes one).
   */
  async ensure(members: MemberList): Promise<string | undefined> {
    if (this.#leaseId && !this.#lost && !this.#vanished(members)) return this.#leaseId;
    this.#starting ??= this.#start().finally(() => {
      this.#starting = undefined;
    });
    return this.#starting;
  }

  /** Called when etcd refused our lease (e.g. "requested lease not found"). */
  markLost(reason: string): void {
    if (this.#lost) return;
    this.#lost = true;
    this.log.warn({ reason }, 'scheduler session lost; starting a new one');
  }

  #vanished(members: MemberList): boolean {
    if (BigInt(members.revision) < this.#memberRevision) return false;
    if (members.items.has(this.keys.scheduler(this.record.name))) return false;
    this.markLost('membership key is gone (lease expired)');
    return true;
  }

  async #start(): Promise<string | undefined> {
    const old = this.#lease;
    this.#lease = undefined;
    this.#leaseId = undefined;
    old?.removeAllListeners();
    await old?.revoke().catch(() => undefined);
    const lease = this.client.lease(this.ttlSeconds, { autoKeepAlive: true });
    lease.on('lost', (error) => this.markLost(error.message));
    const id = await lease.grant();
    const key = this.keys.scheduler(this.record.name);
    const res = await this.client
      .if(key, 'Create', '==', 0)
      .then(
        this.client
          .put(key)
          .value(json({ ...this.record, startedAt: new Date().toISOString() }))
          .lease(id),
      )
      .commit();
    if (!res.succeeded) {
      lease.removeAllListeners();
      await lease.revoke().catch(() => undefined);
      if (this.#waitingSince === undefined) {
        this.#waitingSince = Date.now();
        this.log.info(
          { key },
          'membership key still held by an earlier session (a previous run of this scheduler until its lease expires, or another scheduler with the same name): waiting',
        );
      }
      return undefined;
    }
    if (this.#waitingSince !== undefined) {
      this.log.info({ waitedMs: Date.now() - this.#waitingSince }, 'earlier session gone');
      this.#waitingSince = undefined;
    }
    this.#lease = lease;
    this.#leaseId = id;
    this.#memberRevision = BigInt(res.header.revision);
    this.#lost = false;
    this.log.info({ lease: id, ttlSeconds: this.ttlSeconds }, 'scheduler session started');
    return id;
  }

  async close(): Promise<void> {
    const lease = this.#lease;
    this.#lease = undefined;
    this.#leaseId = undefined;
    lease?.removeAllListeners();
    await lease?.revoke().catch(() => undefined);
  }
}
