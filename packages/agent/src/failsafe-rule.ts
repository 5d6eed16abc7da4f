import type { FailsafePeers, ReplicaRole } from '@service-foundry/core';

/**
 * The failsafe (docs/failover.md, "Through an etcd outage"): a primary whose node lease
 * cannot be renewed keeps accepting writes only while every other replica of its instance
 * has promised, over the agents' authenticated channel, not to take over. Pure rules here;
 * failsafe-promises.ts (replica side) and failsafe-coverage.ts (primary side) apply them,
 * self-fence.ts kills what is not covered.
 *
 * | #  | side       | situation                                                      | rule                                         |
 * |----|------------|----------------------------------------------------------------|----------------------------------------------|
 * | R1 | replica    | no replica of the instance on this node                        | refuse                                       |
 * | R2 | replica    | a local replica of it may be a primary (started or promoted)   | refuse                                       |
 * | R3 | replica    | a local replica follows another epoch than the asker's         | refuse                                       |
 * | R4 | replica    | this node's assignment names a newer epoch, or role primary,   | refuse                                       |
 * |    |            | or cannot be read                                              |                                              |
 * | R6 | replica    | replicas stream from node addresses, and the asker's node      | refuse                                       |
 * |    |            | address is not where a local replica streams from (or unknown) |                                              |
 * | R5 | replica    | otherwise                                                      | promise until now + promiseMs (only extends) |
 * | G1 | replica    | claim (start or promote a primary, epoch > 0) while promised   | refused; retried when the promise ends       |
 * | G2 | replica    | claim within promiseMs of the agent's start                    | refused (a restarted agent forgot promises)  |
 * | G3 | replica    | claim while promised, the promised primary's node fenced       | the promise is over: G1 no longer holds it   |
 * |    |            | (record `fenced`, confirmed at or after the promise began)     | (that primary is powered off)                |
 * | P1 | primary    | lease age ≤ askAfterMs, lease never lost                       | nothing asked; fencing as without failsafe   |
 * | P2 | primary    | lease age > askAfterMs, or lost and not re-verified            | ask every other replica every askIntervalMs  |
 * | P3 | primary    | past the fence point; every peer granted a request sent at s,  | keep the primary while                       |
 * |    |            | the oldest such s the latest grant of the slowest peer         |   now < s + promiseMs − marginMs             |
 * | P4 | primary    | a peer refused, is unreachable, or no grant is recent enough   | kill (as without failsafe)                   |
 * | P5 | primary    | peers unknown: the instance's placements not read at or after  | kill (as without failsafe)                   |
 * |    |            | the primary's epoch                                            |                                              |
 * | P7 | primary    | peers known, none: no other replica of the instance exists     | keep, until the lease is back (then P6)      |
 * | P6 | primary    | lease lost, node registered again                              | re-read primary/<id> after the new node key  |
 * |    |            |                                                                | is in; kill the primary if it moved          |
 * | C1 | controller | failover promotion                                             | commits only while nodes/<old node> is absent|
 * | C2 | controller | a replica's first role (it has never had one)                  | only once the primary's status lists its node|
 * |    |            |                                                                | at a revision ≥ the replica's placement      |
 *
 * Why two primaries never both accept writes. A new primary at epoch E+1 needs the
 * controller's promotion (C1) and then the chosen replica's agent to pass its claim (G1,
 * G2). A replica that granted a request the old primary sent at s received it after s, so
 * its promise lasts past s + promiseMs; the old primary is dead by s + promiseMs − marginMs
 * (P3/P4). Replicas stop granting when they see E+1 (R4) or change role (R2/R3), so the
 * old primary's cover runs out. etcd back mid-way: if the old lease survived, its node key
 * never vanished and no promotion commits (C1); if it expired, the node key is put again
 * before primary/<id> is re-read (P6), so a promotion that committed while it was absent is
 * seen, and until then the old primary lives only on its cover. A primary cut off from
 * etcd and from its peers gets no grant and dies at the fence point, as without failsafe.
 *
 * Who is asked. Peers are the nodes of the instance's other placements, read from etcd at a
 * revision R and published with every status of this agent (`peers`). A replica becomes a
 * promotion candidate only by following a primary, which needs a first role, which the
 * controller gives only once the primary's status lists the replica's node at an R at or
 * after its placement (C2). A replica with a role before this primary's epoch was placed
 * before it, so a read at R ≥ epoch (P5) lists it too. So every candidate is asked, and a
 * primary that knows of no other replica (P7) has none that could be promoted: one placed
 * while it is cut off from etcd waits for a role it cannot be given. A placement moves to
 * another node only once the old node is confirmed fenced (powered off), and a relocated
 * replica's old node, still listed, refuses (R1). The lone primary is therefore kept, as
 * Patroni's failsafe keeps a leader whose member list holds only itself.
 */

export interface FailsafeTiming {
  /** How long one grant binds the replica that gave it. */
  promiseMs: number;
  /** Self-fencing's margin: the primary dies this long before its cover ends. */
  marginMs: number;
}

/** What a replica knows of one local replica of the instance it is asked about. */
export interface LocalReplicaView {
  ordinal: number;
  role: ReplicaRole | undefined;
  /** The epoch the replica follows (or a primary's epoch). */
  epoch: number | undefined;
  mayBePrimary: boolean;
  /** The host it streams from, when known. */
  upstreamHost: string | undefined;
  /** This node's assignment for it, as last seen (`unreadable`: a malformed record). */
  assigned: { role: ReplicaRole | undefined; epoch: number | undefined } | 'unreadable' | undefined;
}

export interface PromiseRequest {
  instanceId: string;
  /** The asking primary's epoch (`primary/<id>`'s mod revision when it became primary). */
  epoch: number;
  /**
   * R6, where replicas stream from node addresses (one dockerd per node, real hosts): the
   * asking node's address, which must be the local replicas' upstream. Undefined: not
   * checked (one shared Docker Engine, where replicas stream from container addresses).
   */
  asker?: { node: string; address: string | undefined };
}

export type PromiseVerdict = { grant: true } | { grant: false; reason: string };

/** R1–R6: may this node promise not to take over `request.instanceId`? */
export function answerPromise(request: PromiseRequest, local: readonly LocalReplicaView[]): PromiseVerdict {
  if (local.length === 0) return { grant: false, reason: 'no replica of this instance here' };
  for (const replica of local) {
    if (replica.mayBePrimary) {
      return { grant: false, reason: `replica ${replica.ordinal} here is (or may be) a primary` };
    }
    if (replica.epoch !== request.epoch || replica.role !== 'replica') {
      return {
        grant: false,
        reason: `replica ${replica.ordinal} here follows epoch ${replica.epoch ?? 'unknown'}, not ${request.epoch}`,
      };
    }
    const assigned = replica.assigned;
    if (assigned === 'unreadable')
      return { grant: false, reason: `replica ${replica.ordinal} here has an unreadable assignment` };
    if (assigned?.role === 'primary' || (assigned?.epoch ?? 0) > request.epoch) {
      return {
        grant: false,
        reason: `replica ${replica.ordinal} here is assigned ${assigned?.role ?? 'a role'} at epoch ${assigned?.epoch ?? 0}`,
      };
    }
    if (request.asker && replica.upstreamHost !== request.asker.address) {
      return {
        grant: false,
        reason: `replica ${replica.ordinal} here streams from ${replica.upstreamHost ?? 'an unknown upstream'}, not from ${request.asker.node} (${request.asker.address ?? 'address unknown'})`,
      };
    }
  }
  return { grant: true };
}

/** A peer's latest grant: the send time (the primary's clock) of the request it granted. */
export interface PeerGrant {
  sentAt: number | undefined;
}

/** P3/P5: until when a primary is covered; −Infinity without peers or while one has not granted. */
export function coveredUntil(peers: readonly PeerGrant[], timing: FailsafeTiming): number {
  if (peers.length === 0) return Number.NEGATIVE_INFINITY;
  let until = Number.POSITIVE_INFINITY;
  for (const peer of peers) {
    if (peer.sentAt === undefined) return Number.NEGATIVE_INFINITY;
    until = Math.min(until, peer.sentAt + timing.promiseMs - timing.marginMs);
  }
  return until;
}

/**
 * P3–P5, P7: until when the primary at `epoch` is covered, given the peers it knows and the
 * send time of each one's latest grant.
 */
export function coverOf(
  known: FailsafePeers | undefined,
  epoch: number,
  grantOf: (node: string) => number | undefined,
  timing: FailsafeTiming,
): number {
  if (known === undefined || BigInt(known.revision) < BigInt(epoch)) return Number.NEGATIVE_INFINITY;
  if (known.nodes.length === 0) return Number.POSITIVE_INFINITY;
  return coveredUntil(
    known.nodes.map((node) => ({ sentAt: grantOf(node) })),
    timing,
  );
}

/** P3/P4: keep a primary past its lease's fence point? */
export function keepCovered(now: number, until: number): boolean {
  return now < until;
}
