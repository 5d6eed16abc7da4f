import type { Etcd3, Logger } from '@service-foundry/core';

type Lease = ReturnType<Etcd3['lease']>;

export interface LeaseRenewerTiming {
  /** Time between renewals while they are confirmed. */
  intervalMs: number;
  /** Time between renewals once none was confirmed for 1.5 × `intervalMs`. */
  urgentIntervalMs: number;
  /** A renewal etcd has not answered by then is given up (its slot freed). */
  deadlineMs: number;
  /** Renewals in flight at most: a paused etcd answers none, and they must not pile up. */
  maxInFlight: number;
}

/**
 * The timing a lease of `ttlSeconds` is renewed with.
 *
 * A renewal is given up after a third of the TTL. Renewals etcd cannot answer soon are
 * those sent to a member that went dark (its host lost power or its link: no reset, the
 * call waits for gRPC's keepalive) and those a follower forwards to a leader that just
 * died (they wait for the request's own deadline). With the whole TTL as deadline, such
 * renewals held every slot (`maxInFlight` 8 at one per 100 ms) for up to 3 s after a
 * node with an etcd member lost power, nothing else was sent, and the agents of the
 * *other* nodes fenced themselves (measured with `sf chaos`: 2.0-2.3 s unconfirmed).
 * Given up after a third, a renewal frees its slot, its failure steers the next ones away
 * from that member (core's etcd-member-order.ts: a member that failed is tried later), and those sent after the
 * election are confirmed.
 */
export function renewerTiming(ttlSeconds: number): LeaseRenewerTiming {
  const ttlMs = ttlSeconds * 1000;
  const urgentIntervalMs = Math.min(100, ttlMs / 20);
  const deadlineMs = ttlMs / 3;
  return {
    intervalMs: Math.min(1000, ttlMs / 6),
    urgentIntervalMs,
    deadlineMs,
    // Every renewal of one deadline's worth of urgent sends, and one more.
    maxInFlight: Math.ceil(deadlineMs / urgentIntervalMs) + 1,
  };
}

/**
 * Renews one etcd lease with requests of its own, each on its own short stream, instead of
 * etcd3's `autoKeepAlive` (one stream, a renewal every TTL/3, a new stream 100 ms after
 * the old one failed).
 *
 * Why: when the raft leader's member dies, no renewal is confirmed until the others have
 * elected a new leader and the client has found a live member. etcd3's stream then
 * confirms only the first renewal it sends afterwards, up to TTL/3 after the last confirmed
 * one; measured on a 3-member etcd (50/500 ms raft timing, 3 s lease, leader killed, 8
 * times): the lease went 1.0-2.05 s unconfirmed, and the agent fences at 2.25 s. Renewing
 * every TTL/6, then every 100 ms while none is confirmed, on a member picked afresh each
 * time: 0.83-1.36 s (10 kills), 1.2 s with six busy loops beside it.
 *
 * `lastConfirmedSentAt` is the time the last confirmed request was *sent*: etcd renewed the
 * lease after that moment, so the lease holds at least until then plus the TTL. A renewal etcd
 * answers with "lease not found" makes etcd3 emit the lease's `lost` event; renewing stops.
 */
export class LeaseRenewer {
  readonly #lease: Lease;
  readonly #timing: LeaseRenewerTiming;
  readonly #log: Logger;
  readonly #onConfirmed: ((sentAt: number) => void) | undefined;
  #timer: NodeJS.Timeout | undefined;
  #inFlight = 0;
  #lastSentAt = 0;
  #lastConfirmedSentAt: number;
  #stopped = false;

  constructor(
    lease: Lease,
    timing: LeaseRenewerTiming,
    log: Logger,
    /** Send time of the grant or renewal that is known confirmed. */
    confirmedSentAt: number,
    /** Called with the send time of each renewal confirmed (a newer one than the last). */
    onConfirmed?: (sentAt: number) => void,
  ) {
    this.#onConfirmed = onConfirmed;
    this.#lease = lease;
    this.#timing = timing;
    this.#log = log;
    this.#lastConfirmedSentAt = confirmedSentAt;
  }

  /** Send time of the last renewal (or the grant) etcd confirmed, ms since the epoch. */
  get lastConfirmedSentAt(): number {
    return this.#lastConfirmedSentAt;
  }

  /** Renewals sent and not answered yet. */
  get inFlight(): number {
    return this.#inFlight;
  }

  start(): void {
    if (this.#timer || this.#stopped) return;
    this.#timer = setInterval(() => this.#tick(), this.#timing.urgentIntervalMs);
    this.#timer.unref();
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
  }

  #tick(): void {
    if (this.#stopped || this.#lease.revoked()) {
      this.stop();
      return;
    }
    const { intervalMs, urgentIntervalMs, deadlineMs, maxInFlight } = this.#timing;
    const now = Date.now();
    const urgent = now - this.#lastConfirmedSentAt > intervalMs * 1.5;
    // A few ms of slack: the timer ticks every urgentIntervalMs and never exactly on time.
    const due = now - this.#lastSentAt >= (urgent ? urgentIntervalMs : intervalMs) - 5;
    if (!due || this.#inFlight >= maxInFlight) return;
    this.#lastSentAt = now;
    this.#inFlight += 1;
    this.#lease
      .keepaliveOnce({ deadline: new Date(now + deadlineMs) })
      .then(
        () => {
          if (this.#stopped || now <= this.#lastConfirmedSentAt) return;
          this.#lastConfirmedSentAt = now;
          this.#onConfirmed?.(now);
        },
        (error: unknown) => {
          if (!this.#stopped) this.#log.debug({ err: error }, 'lease renewal failed');
        },
      )
      .finally(() => {
        this.#inFlight -= 1;
      });
  }
}
