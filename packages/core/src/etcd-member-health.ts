import { InterceptingCall, type Interceptor, status as Status } from '@grpc/grpc-js';
import { NoopPolicy } from 'cockatiel';

/** A call this long without a word from its member makes the member silent. */
export const silentAfterMs = 500;

/** A member that failed is given one call again (a trial) this long after its last failure. */
export const trialAfterMs = 1000;

/**
 * Call endings that say something about the member: those etcd3 retries on another member
 * (its "recoverable" errors), except CANCELLED, which is the client's own doing.
 */
const memberFaults: ReadonlySet<Status> = new Set([
  Status.UNKNOWN,
  Status.DEADLINE_EXCEEDED,
  Status.RESOURCE_EXHAUSTED,
  Status.ABORTED,
  Status.INTERNAL,
  Status.UNAVAILABLE,
]);

/**
 * How etcd begins the text of an error it answers ("etcdserver: no leader"). gRPC's own
 * failures (unreachable, deadline, dropped connection) read otherwise.
 */
const etcdAnswerPrefix = 'etcdserver:';

/**
 * - `answering`: nothing failed since it was last heard from, and no call waits on it.
 * - `trial`: it failed, the last failure is `trialAfterMs` old, and no call was made to it
 *   since: the next one finds out whether it is back.
 * - `refused`: it failed lately (a deadline, "no leader"), or its trial call is still out.
 * - `unreachable`: as refused, but its last failure was gRPC's UNAVAILABLE: no connection,
 *   or the connection dropped (a member killed, its host refusing). Ranked after members
 *   that time out: after a leader is killed, the live members hold renewals until the
 *   election ends and time out meanwhile, which makes them no better heard from than the
 *   dead leader, heard last of all until the moment it died. Ranked by that, every
 *   renewal went to the dead member for 2.1-2.5 s (measured, three local members).
 * - `silent`: a call has waited `silentAfterMs` without a word from it since the call
 *   began. A host gone dark fails nothing until a deadline or gRPC's keepalive ends a call,
 *   1-5 s later.
 */
export type MemberStanding = 'answering' | 'trial' | 'refused' | 'unreachable' | 'silent';

/**
 * What one etcd member has shown lately, for etcd-member-order.ts to rank it by. Read from
 * the member's calls by an interceptor on its channel, streams included: etcd3 reports a
 * failed stream (a lease renewal) to the member's policy only while the stream is still
 * writable, which it no longer is by then.
 *
 * Heard from = a message, a status OK, or an error etcd itself answered. gRPC hands a
 * failed call empty metadata and a null message just as an answer would carry: those
 * prove nothing.
 *
 * It is also the member's fault-handling policy in etcd3's pool (a no-op policy), so the
 * pool's own host record leads to it. It never refuses a call:
 * etcd3's circuit breaker did, and after an election every live member had just answered
 * "no leader", so for a second every request failed at once without being sent, or went to
 * the one member whose breaker was still closed because it had answered nothing: the dark
 * one. Ranking does what the breaker was for, without ever leaving no member to try.
 */
export class MemberHealth extends NoopPolicy {
  #failedAt = Number.NEGATIVE_INFINITY;
  #heardAt = 0;
  /** The last failure was UNAVAILABLE (not an answer of etcd's). */
  #unreachable = false;
  #lastCallAt = Number.NEGATIVE_INFINITY;
  /** Start times of the calls still open, by call. */
  readonly #open = new Map<object, number>();

  /** Set on the member's channel before any call is made on it. */
  readonly interceptor: Interceptor = (options, nextCall) => {
    const call = {};
    return new InterceptingCall(nextCall(options), {
      // The caller's listener is passed on by `next`; this one only looks on the way.
      start: (metadata, _listener, next) => {
        this.#lastCallAt = Date.now();
        this.#open.set(call, this.#lastCallAt);
        next(metadata, {
          onReceiveMessage: (message, nextMessage) => {
            if (message !== null && message !== undefined) this.#heardAt = Date.now();
            nextMessage(message);
          },
          onReceiveStatus: (status, nextStatus) => {
            this.#open.delete(call);
            const now = Date.now();
            const answered = status.code === Status.OK || status.details.startsWith(etcdAnswerPrefix);
            if (answered) this.#heardAt = now;
            if (memberFaults.has(status.code)) {
              this.#failedAt = now;
              this.#unreachable = status.code === Status.UNAVAILABLE && !answered;
            }
            nextStatus(status);
          },
        });
      },
    });
  };

  /** When the member was last heard from, ms since the epoch (0: never). */
  get heardAt(): number {
    return this.#heardAt;
  }

  standing(now = Date.now()): MemberStanding {
    if (this.#silent(now)) return 'silent';
    if (this.#failedAt < this.#heardAt) return 'answering';
    const trialDue = now - this.#failedAt >= trialAfterMs && this.#lastCallAt <= this.#failedAt;
    if (trialDue) return 'trial';
    return this.#unreachable ? 'unreachable' : 'refused';
  }

  #silent(now: number): boolean {
    for (const startedAt of this.#open.values()) {
      if (startedAt > this.#heardAt && now - startedAt >= silentAfterMs) return true;
    }
    return false;
  }
}
