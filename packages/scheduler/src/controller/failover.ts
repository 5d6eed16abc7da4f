import type {
  FailoverPolicy,
  NodeFenceRecord,
  ReplicaStatus,
  TransferStatusRecord,
  Versioned,
} from '@service-foundry/core';
import type { InstanceView } from './topology.js';

/** Runs a node's fence devices; resolves when fencing is confirmed or has failed. */
export interface Fencer {
  fence(node: string, reason: string): Promise<{ fenced: boolean; detail: string }>;
}

export const defaultFailoverPolicy: FailoverPolicy = {
  fencing: 'required',
  fencingTimeoutSeconds: 60,
  maxLagBytes: 16 * 1024 * 1024,
};

/** How long candidates get to report a position read after the primary was lost. */
export const positionWaitMs = 3000;

/**
 * A fence outcome older than this before the node was found lost belongs to an earlier
 * incident: the node was alive after it, so it is fenced again, and a failure is retried.
 */
export const fenceRecordWindowMs = 30_000;

/** A failed fence is tried again this long after it failed (an operator can `sf fence` sooner). */
export const fenceRetryMs = 30_000;

/**
 * How long a lost primary's node is watched before anything is done: long enough to see
 * whether other leases vanish with it (they arrive as separate watch events) and whether
 * its agent registers again at once, as agents do when etcd comes back from an outage.
 */
export const failoverSettleMs = 1000;

/** Leases that vanished within this long of each other count as lost together. */
export const lostTogetherWindowMs = 5000;

/**
 * How long a failover waits when nodes were lost together, for their agents to register
 * again. An etcd outage expires every lease at once; when etcd is back the agents renew
 * within a second or two, and each starts its own primary again (I3's rule 2).
 */
export const lostTogetherGraceMs = 20_000;

export type FailoverDecision =
  | { kind: 'none' }
  | { kind: 'wait'; reason: string }
  | { kind: 'fence'; node: string }
  | { kind: 'revoke'; node: string; reason: string }
  | { kind: 'blocked'; reason: string }
  | { kind: 'promote'; ordinal: number; node: string; status: ReplicaStatus | undefined; reason: string };

export interface FailoverInput {
  view: InstanceView;
  policy: FailoverPolicy;
  /** When the controller first saw the primary's node gone. */
  suspectSince: number;
  now: number;
  fence: Versioned<NodeFenceRecord> | undefined;
  /** Whether this controller already started fencing the node for this failover. */
  fencingStarted: boolean;
  /** The primary's last reported position, remembered from before its status vanished. */
  lastPrimaryPosition: bigint | undefined;
  /** Volume shipping: a standby's copy record (`transfers/<id>/<ordinal>/<node>`). */
  snapshotOf?: (ordinal: number, node: string) => TransferStatusRecord | undefined;
  /** Whether the primary's node was lost together with others (`lostTogether`), as latched at suspicion. */
  lostTogether?: boolean;
  /**
   * The incident began with the node's agent going silent (node-prober.ts), not with its
   * lease: no settling, no lost-together wait, and while the lease lives nothing but
   * fencing happens. Latched at suspicion. @default false
   */
  silent?: boolean;
}

/**
 * Nodes lost together: at least two leases vanished within `lostTogetherWindowMs` (the
 * primary's among them), and no fewer than there are nodes alive. One node's failure, or
 * a minority's, does not look like this; an etcd outage does, and so would most of the
 * nodes failing at once, which then waits `lostTogetherGraceMs` longer: safety first.
 */
export function lostTogether(count: { together: number; alive: number }): boolean {
  return count.together >= 2 && count.together >= count.alive;
}

/**
 * The failover state machine, one step per call (docs/failover.md has the same table):
 *
 * | state            | condition                                              | next / action                           |
 * |------------------|--------------------------------------------------------|-----------------------------------------|
 * | healthy          | primary's node alive (and answering, when probed)      | none                                    |
 * | silent           | node registered, its agent silent, policy not `off`    | → fencing at once (no settle, no        |
 * |                  |                                                        | lost-together wait)                     |
 * | silent, fenced   | node still registered                                  | revoke its lease → choose (next step)   |
 * | silent, unfenced | policy `best-effort`, timeout passed, lease alive      | wait for the lease to expire            |
 * | settle           | node gone < 1 s, no fencing started                    | wait (other losses; the agent may be    |
 * |                  |                                                        | back at once)                           |
 * | lost together    | ≥ 2 nodes lost within 5 s, not fewer than alive ones,  | wait (etcd came back: every lease had   |
 * |                  | < 20 s since suspect                                   | expired; agents re-register)            |
 * | suspect          | node gone, policy `off`                                | → choose (lease expiry = self-fenced)   |
 * | suspect          | node gone, no fence record or `unfenced`               | → fencing: run the node's fence levels  |
 * | fencing          | our fence call still running                           | wait                                    |
 * | fencing          | another controller's attempt (record `fencing`)        | → fencing: join it (the library waits)  |
 * | fence failed     | policy `required`, failed < 30 s ago                   | blocked: no promotion, said loudly      |
 * | fence failed     | failed ≥ 30 s ago                                      | → fencing again                         |
 * | fence failed     | policy `best-effort`, before the timeout               | wait                                    |
 * | any not fenced   | policy `best-effort`, timeout passed since suspect     | → choose                                |
 * | fenced           | record `fenced` from this incident                     | → choose                                |
 * | stale record     | `fenced`/`failed` older than the incident (30 s window)| → fencing again                         |
 * | choose           | a live candidate has not reported since suspect, < 3 s | wait for fresh positions                |
 * | choose           | still not after 3 s, durability not async             | blocked: it may hold acknowledged writes |
 * | choose           | no running replica on a live node                      | blocked: nothing to promote             |
 * | choose           | async and best candidate lags > max lag                | blocked: would lose too much            |
 * | choose           | otherwise                                              | promote the most advanced replica       |
 *
 * In `received` / `remote-fsync` every acknowledged commit reached at least one standby
 * (`ANY 1`), and WAL is sequential, so the most advanced standby holds every acknowledged
 * write (I4). Pure: the controller performs the action it returns.
 */
export function decideFailover(input: FailoverInput): FailoverDecision {
  const { view, policy, fence, now } = input;
  const primary = view.primary?.value;
  if (!primary) return { kind: 'none' };
  const node = primary.node;
  const silent = input.silent === true;
  // A registered node is failed over only when it went silent, and only through a fence.
  const registered = view.liveNodes.has(node);
  if (registered && (!silent || policy.fencing === 'off')) return { kind: 'none' };
  if (!silent && !input.fencingStarted && now - input.suspectSince < failoverSettleMs) {
    return {
      kind: 'wait',
      reason: `node ${node} lost its lease; watching it for ${failoverSettleMs} ms before acting`,
    };
  }
  if (!silent && input.lostTogether && now - input.suspectSince < lostTogetherGraceMs) {
    return {
      kind: 'wait',
      reason: `node ${node} lost its lease together with other nodes (etcd outage?); waiting up to ${lostTogetherGraceMs / 1000} s for the agents to register again before failing over`,
    };
  }

  const current = fence && Date.parse(fence.value.at) >= input.suspectSince - fenceRecordWindowMs ? fence : undefined;
  if (policy.fencing !== 'off' && current?.value.state !== 'fenced') {
    const timedOut = now - input.suspectSince > policy.fencingTimeoutSeconds * 1000;
    if (!(policy.fencing === 'best-effort' && timedOut)) {
      if (input.fencingStarted) return { kind: 'wait', reason: `fencing node ${node}` };
      if (current?.value.state === 'failed' && now - Date.parse(current.value.at) < fenceRetryMs) {
        return policy.fencing === 'required'
          ? { kind: 'blocked', reason: `failover blocked: fencing of node ${node} failed (${current.value.reason})` }
          : { kind: 'wait', reason: `fencing of ${node} failed; best-effort policy waits until the timeout` };
      }
      // Not fenced yet, a failure worth retrying, or another controller's attempt to join.
      return { kind: 'fence', node };
    }
    if (registered) {
      return {
        kind: 'wait',
        reason: `node ${node} is silent but still holds its lease and was not fenced; waiting for the lease to expire`,
      };
    }
  }
  if (registered) {
    // Fenced: its agent is down with it. Its lease goes now rather than at its TTL, so the
    // promotion compares the node key's absence as always (C1) and its statuses vanish.
    return { kind: 'revoke', node, reason: `node ${node} is fenced; revoking its lease` };
  }

  if (view.shipping) return chooseStandby(input, node, primary.ordinal);

  // A position counts only if read after the old primary stopped: after the lease was lost
  // (it fenced itself before that) and, when STONITH ran, after the fence.
  const fencedAt = current?.value.state === 'fenced' ? Date.parse(current.value.at) : 0;
  const freshAfter = Math.max(input.suspectSince, fencedAt);
  const candidates: Array<{ ordinal: number; node: string; status: ReplicaStatus; position: bigint }> = [];
  const stale: number[] = [];
  for (const placement of view.placements) {
    if (placement.ordinal === primary.ordinal || !view.liveNodes.has(placement.node)) continue;
    const status = view.statuses.get(placement.ordinal)?.value;
    if (status?.state !== 'running' || status.role !== 'replica' || status.position === undefined) continue;
    const fresh = status.positionAt !== undefined && Date.parse(status.positionAt) > freshAfter;
    if (!fresh) {
      stale.push(placement.ordinal);
      continue;
    }
    candidates.push({ ordinal: placement.ordinal, node: placement.node, status, position: BigInt(status.position) });
  }
  const durability = view.instance.io?.durability ?? 'async';
  if (stale.length > 0 && now - freshAfter < positionWaitMs) {
    return { kind: 'wait', reason: 'waiting for replicas to report their positions' };
  }
  // With a synchronous durability an acknowledged commit may be on one standby only: a
  // running one that has not answered may be the one that holds it, so none other is
  // promoted over it (I4). Safety wins over availability, and the reason says so.
  if (stale.length > 0 && durability !== 'async') {
    const which = stale.map((o) => `replica ${o}`).join(', ');
    return {
      kind: 'blocked',
      reason: `failover blocked: ${which} on a live node reported no position since the primary was lost; with ${durability} it may hold acknowledged writes no other replica has, so nothing is promoted until it reports`,
    };
  }
  if (candidates.length === 0) {
    return {
      kind: 'blocked',
      reason: `failover blocked: no running replica to promote (primary node ${node} is down)`,
    };
  }
  candidates.sort((a, b) => (a.position === b.position ? a.ordinal - b.ordinal : a.position > b.position ? -1 : 1));
  const best = candidates[0] as (typeof candidates)[number];
  if (durability === 'async' && input.lastPrimaryPosition !== undefined) {
    const lag = input.lastPrimaryPosition - best.position;
    if (lag > BigInt(policy.maxLagBytes)) {
      return {
        kind: 'blocked',
        reason: `failover blocked: the most advanced replica is ${lag} bytes behind (max_lag_bytes ${policy.maxLagBytes})`,
      };
    }
  }
  return {
    kind: 'promote',
    ordinal: best.ordinal,
    node: best.node,
    status: best.status,
    reason: `primary node ${node} is down; replica ${best.ordinal} on ${best.node} is the most advanced (position ${best.position})`,
  };
}

/**
 * Volume shipping: promote the standby on a live node whose last complete copy of the lost
 * primary is the newest. Its volume changes only by whole swapped-in copies, so what it
 * holds is that snapshot, never a half-copied one. What the primary wrote after it is lost
 * (at most the plan's interval plus one copy: the RPO), and the reason says how old it is.
 */
function chooseStandby(input: FailoverInput, lostNode: string, primaryOrdinal: number): FailoverDecision {
  const { view } = input;
  let best: { ordinal: number; node: string; copiedAt: number } | undefined;
  for (const placement of view.placements) {
    if (placement.ordinal === primaryOrdinal || !view.liveNodes.has(placement.node)) continue;
    const snapshot = input.snapshotOf?.(placement.ordinal, placement.node);
    if (!snapshot?.copiedAt || snapshot.from.node !== lostNode) continue;
    const copiedAt = Date.parse(snapshot.copiedAt);
    if (!best || copiedAt > best.copiedAt) best = { ordinal: placement.ordinal, node: placement.node, copiedAt };
  }
  if (!best) {
    return {
      kind: 'blocked',
      reason: `failover blocked: no standby on a live node holds a complete copy (primary node ${lostNode} is down)`,
    };
  }
  const age = Math.max(0, Math.round((input.suspectSince - best.copiedAt) / 100) / 10);
  return {
    kind: 'promote',
    ordinal: best.ordinal,
    node: best.node,
    status: view.statuses.get(best.ordinal)?.value,
    reason:
      `primary node ${lostNode} is down; standby ${best.ordinal} on ${best.node} holds the newest complete copy ` +
      `(taken ${age} s before the primary was lost; later writes are lost)`,
  };
}
