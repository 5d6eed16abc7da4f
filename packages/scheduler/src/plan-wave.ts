import type { InstanceRecord } from '@service-foundry/core';
import type { ClusterState } from './cluster-state.js';
import { defaultFilters } from './placement/filters/index.js';
import type { NodeView } from './placement/node-view.js';
import { describeRejections, pickNode } from './placement/rank.js';
import type { WeightedScorer } from './placement/scores/index.js';
import { type Filter, type PendingReplica, type SiblingPlacement, zoneOf } from './placement/types.js';
import type { Slot } from './work-list.js';

/** A slot with its decision inputs, ready to be committed on a node. */
export interface PlannedReplica {
  slot: Slot;
  replica: PendingReplica;
  /** Every placement key of the instance with the revision seen ('0': absent). */
  placementRevisions: Map<string, string>;
}

export interface WavePlan {
  byNode: Map<string, PlannedReplica[]>;
  /** Slots no live node can take, with the reason users see. */
  unplaceable: Array<{ slot: Slot; reason: string }>;
}

export interface PlanOptions {
  filters?: readonly Filter[];
  scorers: readonly WeightedScorer[];
  nodesToScore: number;
  /** Labels the instance's plan requires of a node. */
  requiredLabelsOf: (instance: InstanceRecord) => Readonly<Record<string, string>>;
  /** In [0, 1); where each replica's scan over the nodes starts. @default Math.random */
  random?: () => number;
}

/** What the filters and the commit need to know about a slot, from the watched state. */
export function plannedReplicaFor(
  slot: Slot,
  state: ClusterState,
  requiredLabelsOf: PlanOptions['requiredLabelsOf'],
): PlannedReplica {
  const keys = state.keys;
  const { id, replicas, resources } = slot.instance.value;
  const placementRevisions = new Map<string, string>();
  const siblings: SiblingPlacement[] = [];
  const prefix = keys.instancePlacements(id);
  for (let ordinal = 0; ordinal < replicas; ordinal++) placementRevisions.set(`${prefix}${ordinal}`, '0');
  for (const placement of state.versionedPlacementsOf(id)) {
    if (placement.value.ordinal === slot.ordinal) continue;
    placementRevisions.set(placement.key, placement.modRevision);
    siblings.push({
      ordinal: placement.value.ordinal,
      node: placement.value.node,
      zone: zoneOf(state.nodeRecord(placement.value.node)),
    });
  }
  // The replica's own key: absent, or the placement being moved — never what the watched
  // copy shows now (a work list can lag behind it).
  placementRevisions.set(`${prefix}${slot.ordinal}`, slot.moveFrom?.modRevision ?? '0');
  const from = slot.moveFrom?.value;
  const previousNodes = from ? [from.node, ...(from.previousNodes ?? [])] : [];
  return {
    slot,
    placementRevisions,
    replica: {
      instanceId: id,
      ordinal: slot.ordinal,
      resources,
      requiredLabels: requiredLabelsOf(slot.instance.value),
      siblings,
      previousNodes,
    },
  };
}

/**
 * Decides a node for each slot of one wave (filter → score over a sample of nodes), each
 * decision counting the ones before it. A wave holds at most one replica per instance,
 * so its decisions never depend on each other's commits.
 */
export function planWave(slots: readonly Slot[], state: ClusterState, view: NodeView, options: PlanOptions): WavePlan {
  const byNode = new Map<string, PlannedReplica[]>();
  const unplaceable: WavePlan['unplaceable'] = [];
  const random = options.random ?? Math.random;
  const filters = options.filters ?? defaultFilters;
  for (const slot of slots) {
    const planned = plannedReplicaFor(slot, state, options.requiredLabelsOf);
    const picked = pickNode(planned.replica, view.candidates, {
      filters,
      scorers: options.scorers,
      context: view.context,
      nodesToScore: options.nodesToScore,
      start: Math.floor(random() * view.candidates.length),
    });
    if (!picked.node) {
      const reason = describeRejections(picked.rejections, view.candidates.length);
      unplaceable.push({ slot, reason });
      continue;
    }
    view.assume(picked.node, planned.replica);
    const name = picked.node.node.name;
    const list = byNode.get(name) ?? [];
    list.push(planned);
    byNode.set(name, list);
  }
  return { byNode, unplaceable };
}
