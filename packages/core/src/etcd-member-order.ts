import { CircuitState } from 'cockatiel';
import type { Etcd3 } from 'etcd3';

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
 * Each member has a circuit breaker (etcd.ts): it opens on a failed request and lets one
 * request through again a second later. Here members are ordered by their breaker: closed
 * (answering) first, then half-open (on trial), then open, at random within each group so
 * load still spreads. A member that failed is tried only when no answering member took the
 * request, so a dead one costs one deadline, not one in three.
 */

interface PoolHost {
  faultHandling: { readonly state?: CircuitState };
}

interface PoolInternals {
  hosts: PoolHost[];
  shuffledHosts: () => Generator<PoolHost, never>;
}

function rank(host: PoolHost): number {
  switch (host.faultHandling.state) {
    case CircuitState.Closed:
      return 0;
    case CircuitState.HalfOpen:
      return 1;
    default:
      return 2;
  }
}

/**
 * Replaces the member order of `client`'s connection pool (etcd3 1.x keeps it in
 * `pool.shuffledHosts`, a generator each request walks). Throws when etcd3's internals no
 * longer look like that, so an upgrade that changed them fails loudly at start-up.
 */
export function preferAnsweringMembers(client: Etcd3): void {
  const pool = (client as unknown as { pool?: Partial<PoolInternals> }).pool;
  if (!pool || !Array.isArray(pool.hosts) || typeof pool.shuffledHosts !== 'function') {
    throw new Error('etcd3 connection pool internals changed: cannot order members (etcd-member-order.ts)');
  }
  const hosts = pool.hosts;
  pool.shuffledHosts = function* orderedHosts(): Generator<PoolHost, never> {
    while (true) {
      const order = hosts
        .map((host) => ({ host, rank: rank(host), tiebreak: Math.random() }))
        .sort((a, b) => a.rank - b.rank || a.tiebreak - b.tiebreak);
      for (const { host } of order) yield host;
    }
  };
}
