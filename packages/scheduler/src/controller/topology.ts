import {
  type AssignmentRecord,
  type InstanceRecord,
  type IoPolicy,
  type PlacementRecord,
  type PrimaryRecord,
  type ReplicaStatus,
  sameIo,
  type Versioned,
} from '@service-foundry/core';
import { primaryKnowsOf } from './first-role.js';

/** What the controller knows about one instance's replicas at one moment. */
export interface InstanceView {
  instance: InstanceRecord;
  placements: PlacementRecord[];
  assignments: Map<number, Versioned<AssignmentRecord>>;
  statuses: Map<number, Versioned<ReplicaStatus>>;
  primary: Versioned<PrimaryRecord> | undefined;
  liveNodes: ReadonlySet<string>;
  /** The service has native replication (catalog `replication`) and the plan uses it. */
  replicated: boolean;
  /** The plan keeps standbys by volume shipping (catalog plan `volumeShipping`). */
  shipping?: { intervalSeconds: number };
}

export interface AssignmentChange {
  ordinal: number;
  node: string;
  current: Versioned<AssignmentRecord>;
  next: AssignmentRecord;
}

/** IO settings of instances from before replication. */
export const defaultIo: IoPolicy = { durability: 'async', localIo: 'fsync' };

function sameUpstream(a: AssignmentRecord['upstream'], b: AssignmentRecord['upstream']): boolean {
  return a?.host === b?.host && a?.port === b?.port;
}

/**
 * The roles every assignment should carry, as a pure function of the instance's state:
 *
 * | situation                              | replica            | role / epoch / upstream                    |
 * |----------------------------------------|--------------------|--------------------------------------------|
 * | no primary key, none bootstrapping yet | lowest live ordinal| primary, epoch 0 (bootstrap)               |
 * | no primary key                         | the others         | unchanged (they need an upstream)          |
 * | primary key at epoch E, ordinal P      | P                  | primary, epoch E                           |
 * | primary key at epoch E                 | others, live node  | replica, epoch E, upstream = P's peer      |
 * | was primary, now another is            | the old primary    | replica, generation + 1 (rebuilt by clone) |
 * | any, a replica's first role            | a new replica      | only once the primary lists its node (C2, first-role.ts) |
 *
 * Replicas on nodes that are not alive are left alone: their agents cannot act, and the
 * old primary's demotion is written so that it applies when its node comes back.
 */
export function desiredAssignments(view: InstanceView): AssignmentChange[] {
  if (!view.replicated) return [];
  const io = view.instance.io ?? defaultIo;
  // A replica given its first role (nothing runs yet) or rebuilt anyway gets the instance's
  // image. Any other keeps what it names, or names nothing (made before upgrades): the
  // upgrade (upgrade.ts) moves those one at a time, never all at once from here.
  const imageFor = (a: AssignmentRecord, rebuilt: boolean): { image?: string } => {
    const image = rebuilt || a.role === undefined ? (view.instance.image ?? a.image) : a.image;
    return image === undefined ? {} : { image };
  };
  const changes: AssignmentChange[] = [];
  const propose = (ordinal: number, node: string, next: AssignmentRecord) => {
    const current = view.assignments.get(ordinal);
    if (current?.value.desired !== 'running') return;
    const c = current.value;
    if (
      c.role === next.role &&
      c.epoch === next.epoch &&
      sameUpstream(c.upstream, next.upstream) &&
      sameIo(c.io, next.io) &&
      (c.generation ?? 0) === (next.generation ?? 0) &&
      c.image === next.image
    ) {
      return;
    }
    changes.push({ ordinal, node, current, next });
  };

  if (!view.primary) {
    const bootstrapping = [...view.assignments.values()].find((a) => a.value.role === 'primary');
    if (bootstrapping) return changes;
    // A restored instance starts from the replica that received the backup, never another.
    const restored = view.instance.restore?.ordinal;
    const first = view.placements.find(
      (p) =>
        view.liveNodes.has(p.node) &&
        view.assignments.has(p.ordinal) &&
        (restored === undefined || p.ordinal === restored),
    );
    const assignment = first && view.assignments.get(first.ordinal);
    if (first && assignment) {
      const a = assignment.value;
      propose(first.ordinal, first.node, { ...a, role: 'primary', epoch: 0, io, ...imageFor(a, false) });
    }
    return changes;
  }

  const epoch = Number(view.primary.modRevision);
  const primaryOrdinal = view.primary.value.ordinal;
  // Only a primary that serves at this epoch says where it answers: a restarting container
  // still reports its previous address (it may come back on another one).
  const primaryStatus = view.statuses.get(primaryOrdinal)?.value;
  const serving =
    primaryStatus?.state === 'running' && (primaryStatus.epoch === undefined || primaryStatus.epoch === epoch);
  const upstream = serving ? primaryStatus.peer : undefined;
  for (const placement of view.placements) {
    const assignment = view.assignments.get(placement.ordinal);
    if (!assignment) continue;
    const a = assignment.value;
    if (placement.ordinal === primaryOrdinal) {
      propose(placement.ordinal, placement.node, { ...a, role: 'primary', epoch, io, ...imageFor(a, false) });
      continue;
    }
    const demoted = a.role === 'primary';
    // The old primary's demotion is recorded even while its node is down, so that it
    // rebuilds from the new primary instead of starting its diverged copy.
    if (!view.liveNodes.has(placement.node) && !demoted) continue;
    if (!upstream && !demoted) continue;
    if (!primaryKnowsOf(view.primary.value, primaryStatus, placement.node, assignment)) continue;
    // A demoted primary's assignment may still name the upstream it followed before it was
    // promoted: cloning from that old address would never succeed. Until the new primary
    // serves it names none, and the agent waits for one.
    const { upstream: _before, ...rest } = a;
    const next: AssignmentRecord = {
      ...rest,
      role: 'replica',
      epoch,
      io,
      generation: (a.generation ?? 0) + (demoted ? 1 : 0),
      ...imageFor(a, demoted),
    };
    if (upstream) next.upstream = upstream;
    propose(placement.ordinal, placement.node, next);
  }
  return changes;
}
