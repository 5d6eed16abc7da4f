import type {
  AssignmentRecord,
  InstanceRecord,
  PlacementRecord,
  PrimaryRecord,
  RelocationRecord,
  ReplicaStatus,
  RouteRecord,
  TransferFigures,
  TransferStatusRecord,
  Versioned,
} from '@service-foundry/core';

/** What the controller knows about one relocation at one moment. */
export interface RelocationView {
  relocation: Versioned<RelocationRecord>;
  instance: InstanceRecord | undefined;
  placement: Versioned<PlacementRecord> | undefined;
  /** The replica's assignment on `from`, and on `to` once reserved. */
  source: Versioned<AssignmentRecord> | undefined;
  target: Versioned<AssignmentRecord> | undefined;
  /** The replica's status key, whichever node wrote it. */
  status: ReplicaStatus | undefined;
  /** The target agent's copy progress. */
  transfer: TransferStatusRecord | undefined;
  primary: Versioned<PrimaryRecord> | undefined;
  route: RouteRecord | undefined;
  liveNodes: ReadonlySet<string>;
  now: number;
}

export type RelocationStep =
  | { kind: 'none' }
  | { kind: 'wait'; message: string }
  | { kind: 'reserve' }
  | { kind: 'next-round'; precopy: TransferFigures }
  | { kind: 'stop-source'; catchUp: TransferFigures }
  | { kind: 'final-round' }
  | { kind: 'switch'; final: TransferFigures }
  | { kind: 'done' }
  | { kind: 'abort'; reason: string };

/**
 * Copy rounds while the service runs: a full copy, then what changed meanwhile. Each is
 * preceded by the service's flush (catalog `flush`), so the final delta after the stop
 * holds little more than what the shutdown itself writes.
 */
export const precopyRounds = 2;
export const finalRound = precopyRounds + 1;

/** A source that has not stopped this long after being told to is given up on (and restarted). */
export const stopDeadlineMs = 120_000;
/** The target agent must report a copy this soon after it was asked for one. */
export const copyStartDeadlineMs = 60_000;

/**
 * The relocation state machine (docs/volumes.md), as a pure function; the controller
 * executes each step as one etcd transaction comparing what it read.
 *
 * | phase     | condition                                                        | step                                   |
 * |-----------|------------------------------------------------------------------|----------------------------------------|
 * | done, failed | —                                                             | none                                   |
 * | any open  | instance gone, not ready (before `switching`)                    | abort                                  |
 * | requested | the replica is no longer placed on `from`                        | abort                                  |
 * | requested | —                                                                | reserve: target chosen, ledger, seeded assignment on `to` |
 * | copying, stopping, final | `from` or `to` stopped answering                   | abort                                  |
 * | copying, stopping, final | target assignment gone                             | abort                                  |
 * | copying, final | copy failed and the agent will not retry                     | abort                                  |
 * | copying, final | no copy reported `copyStartDeadlineMs` after the phase began | abort                                  |
 * | copying   | round 1 copied                                                   | next-round (seed round 2, a delta)     |
 * | copying   | round 2 copied                                                   | stop-source (desired `stopped`)        |
 * | stopping  | the source reports `stopped`                                     | final-round (seed round 3)             |
 * | stopping  | not stopped after `stopDeadlineMs`                               | abort                                  |
 * | final     | round 3 copied                                                   | switch: placement, primary (epoch), assignments, ledger |
 * | switching | the replica runs on `to` (and, if primary, the route names it at the new epoch) | done: the old copy (kept stopped until now) removed |
 * | switching | the instance is being deleted                                    | failed: the old copy removed           |
 * | otherwise | —                                                                | wait, saying what for                  |
 *
 * Abort before `switching` leaves the data where it was: the source is started again,
 * the target's partial copy removed and its capacity returned. From `switching` on the
 * target holds the only current copy, so there is no way back, only forward.
 */
export function decideRelocation(view: RelocationView): RelocationStep {
  const r = view.relocation.value;
  if (r.phase === 'done' || r.phase === 'failed') return { kind: 'none' };
  const sinceUpdate = view.now - Date.parse(r.updatedAt);
  if (r.phase === 'switching') return switching(view);
  if (!view.instance) return { kind: 'abort', reason: 'the instance was deleted' };
  if (view.instance.phase !== 'ready') return { kind: 'abort', reason: `the instance is ${view.instance.phase}` };
  if (view.placement?.value.node !== r.from) {
    return { kind: 'abort', reason: `replica ${r.ordinal} is no longer placed on ${r.from}` };
  }
  if (r.phase === 'requested') return { kind: 'reserve' };

  const to = r.to ?? '';
  if (!view.liveNodes.has(r.from)) return { kind: 'abort', reason: `source node ${r.from} stopped answering` };
  if (!view.liveNodes.has(to)) return { kind: 'abort', reason: `target node ${to} stopped answering` };
  if (view.target?.value.desired !== 'running') {
    return { kind: 'abort', reason: `the assignment on ${to} is gone` };
  }
  const round = r.phase === 'final' ? finalRound : (view.target.value.seed?.round ?? 0);
  const transfer = view.transfer?.round === round ? view.transfer : undefined;
  if (r.phase === 'copying' || r.phase === 'final') {
    if (transfer?.state === 'failed' && !transfer.willRetry) {
      return { kind: 'abort', reason: `copying to ${to} failed: ${transfer.message}` };
    }
    if (!transfer && sinceUpdate > copyStartDeadlineMs) {
      return {
        kind: 'abort',
        reason: `the agent on ${to} did not start copying within ${copyStartDeadlineMs / 1000} s`,
      };
    }
    if (transfer?.state === 'copied' && transfer.result) {
      if (r.phase === 'final') return { kind: 'switch', final: transfer.result };
      return round < precopyRounds
        ? { kind: 'next-round', precopy: transfer.result }
        : { kind: 'stop-source', catchUp: transfer.result };
    }
    const what =
      r.phase === 'final'
        ? 'copying the final delta'
        : `pre-copy round ${round} of ${precopyRounds} while the service runs`;
    return { kind: 'wait', message: `${what} (${r.from} → ${to})` };
  }
  // stopping
  if (view.status?.node === r.from && view.status.state === 'stopped') return { kind: 'final-round' };
  if (sinceUpdate > stopDeadlineMs) {
    return {
      kind: 'abort',
      reason: `replica ${r.ordinal} did not stop on ${r.from} within ${stopDeadlineMs / 1000} s`,
    };
  }
  return { kind: 'wait', message: `stopping replica ${r.ordinal} on ${r.from}` };
}

function switching(view: RelocationView): RelocationStep {
  const r = view.relocation.value;
  // The only way out besides done: the old copy, kept stopped until now, is removed.
  if (!view.instance || view.instance.phase === 'deprovisioning') {
    return { kind: 'abort', reason: 'the instance was deleted while it started on the target' };
  }
  const to = r.to ?? '';
  const status = view.status;
  const running = status?.node === to && status.state === 'running' && status.host !== undefined;
  if (!running) return { kind: 'wait', message: `starting replica ${r.ordinal} on ${to}` };
  const primary = view.primary;
  if (!primary || primary.value.ordinal !== r.ordinal) return { kind: 'done' };
  const route = view.route;
  const routed =
    primary.value.node === to &&
    route?.epoch === Number(primary.modRevision) &&
    route.target.host === status.host &&
    route.target.port === status.port;
  return routed ? { kind: 'done' } : { kind: 'wait', message: `switching the route to ${to}` };
}
