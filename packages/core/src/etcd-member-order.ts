import type { Interceptor } from '@grpc/grpc-js';
import type { Etcd3 } from 'etcd3';
import { MemberHealth, type MemberStanding } from './etcd-member-health.js';

/**
 * Which etcd member a request goes to first.
 *
 * etcd3 tries members in a fresh random order for every request. A member behind a network
 * that drops packets (its host cut off or powered off with its switch port dead) answers
 * nothing: every request sent to it first waits for its whole deadline before the next
 * member is tried, one request in three on a three-member etcd, for as long as the fault
 * lasts. The control plane slowed down that way for over a minute in an `sf chaos
 * etcd-partition` of a node holding a member.
 *
 * Members are ordered by their standing (etcd-member-health.ts): answering ones first, at
 * random so load spreads; then one due a trial; then those that refused lately, the one
 * heard from last first; then unreachable ones, in the same order; silent ones last, at
 * random. When the raft leader goes dark, the
 * followers hold the renewals they forward to it until they notice (0.5-1 s), so for a
 * moment every member is silent: at random, the followers are asked again and answer
 * ("no leader", then the new leader's answers), which puts them ahead of the dark one.
 * Ordered by when each was last heard instead, a leader heard last before it went dark
 * took every call for 2.5 s (measured on three local members).
 *
 * Streams (a lease renewal, a watch) are not retried on another member by etcd3: the first
 * member in this order is the only one they get. A request is retried, on every member in
 * turn when the ones before it fail: the order is a preference, never an exclusion.
 */

interface PoolHost {
  faultHandling: unknown;
  channelOptions?: Record<string, unknown>;
  cachedServices?: Record<string, unknown>;
}

interface PoolInternals {
  hosts: PoolHost[];
  shuffledHosts: () => Generator<PoolHost, never>;
}

const rankOf: Record<MemberStanding, number> = { answering: 0, trial: 1, refused: 2, unreachable: 3, silent: 4 };

/** At random (load spreads, and silent ones all get asked), but failed ones the last heard first. */
function tiebreak(health: MemberHealth, standing: MemberStanding): number {
  return standing === 'refused' || standing === 'unreachable' ? -health.heardAt : Math.random();
}

/**
 * Replaces the member order of `client`'s connection pool (etcd3 1.x keeps it in
 * `pool.shuffledHosts`, a generator each request walks) and puts each member's health
 * interceptor on its channel (each member's fault handling is its `MemberHealth`, see
 * etcd.ts). Throws when etcd3's internals no longer look like that, so an upgrade that
 * changed them fails loudly at start-up.
 */
export function preferAnsweringMembers(client: Etcd3): void {
  const pool = (client as unknown as { pool?: Partial<PoolInternals> }).pool;
  if (!pool || !Array.isArray(pool.hosts) || typeof pool.shuffledHosts !== 'function') {
    throw new Error('etcd3 connection pool internals changed: cannot order members (etcd-member-order.ts)');
  }
  const hosts = pool.hosts;
  for (const host of hosts) {
    const health = host.faultHandling;
    // Set before any service client of the member exists: each is made from these options.
    if (
      !(health instanceof MemberHealth) ||
      !('channelOptions' in host) ||
      !host.cachedServices ||
      Object.keys(host.cachedServices).length > 0
    ) {
      throw new Error('etcd3 host internals changed: cannot watch members (etcd-member-order.ts)');
    }
    const options = host.channelOptions ?? {};
    const interceptors = Array.isArray(options.interceptors) ? (options.interceptors as Interceptor[]) : [];
    host.channelOptions = { ...options, interceptors: [...interceptors, health.interceptor] };
  }
  pool.shuffledHosts = function* orderedHosts(): Generator<PoolHost, never> {
    while (true) {
      const now = Date.now();
      const order = hosts
        .map((host) => {
          const health = host.faultHandling as MemberHealth;
          const standing = health.standing(now);
          return { host, rank: rankOf[standing], tiebreak: tiebreak(health, standing) };
        })
        .sort((a, b) => a.rank - b.rank || a.tiebreak - b.tiebreak);
      for (const { host } of order) yield host;
    }
  };
}
