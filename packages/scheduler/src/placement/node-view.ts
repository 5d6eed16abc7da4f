import {
  addResources,
  type NodeAllocation,
  type NodeRecord,
  type Resources,
  replicaId,
  sumAllocated,
} from '@service-foundry/core';
import type { ClusterState } from '../cluster-state.js';
import { type NodeCandidate, type PendingReplica, type PlacementContext, zoneOf } from './types.js';

/** Sums and instance sets per ledger object: ledgers are replaced, never changed, in the watched copy. */
const ledgerFacts = new WeakMap<NodeAllocation, { allocated: Resources; instanceIds: ReadonlySet<string> }>();

/** A candidate for `node` with `allocation` as its ledger. */
export function candidateOf(
  node: NodeRecord,
  allocation: NodeAllocation,
  extra: Pick<NodeCandidate, 'control' | 'fence'> & { alive?: boolean },
): NodeCandidate {
  let facts = ledgerFacts.get(allocation);
  if (!facts) {
    const instanceIds = new Set<string>();
    for (const r of Object.values(allocation.replicas)) instanceIds.add(r.instanceId);
    facts = { allocated: sumAllocated(allocation.replicas), instanceIds };
    ledgerFacts.set(allocation, facts);
  }
  return {
    node,
    alive: extra.alive ?? true,
    allocation,
    allocated: facts.allocated,
    instanceIds: facts.instanceIds,
    control: extra.control,
    fence: extra.fence,
  };
}

/** A copy of `candidate` with `replica` counted in its ledger (for re-checks under the lock). */
export function withReplica(candidate: NodeCandidate, replica: PendingReplica): NodeCandidate {
  return {
    ...candidate,
    allocation: {
      node: candidate.allocation.node,
      replicas: {
        ...candidate.allocation.replicas,
        [replicaId(replica.instanceId, replica.ordinal)]: {
          instanceId: replica.instanceId,
          ordinal: replica.ordinal,
          resources: replica.resources,
        },
      },
    },
    allocated: addResources(candidate.allocated, replica.resources),
    instanceIds: new Set([...candidate.instanceIds, replica.instanceId]),
  };
}

const sortedNodes = new WeakMap<ClusterState, { revision: string; size: number; list: NodeRecord[] }>();

/** Live node records sorted by name, sorted again only when the nodes changed. */
function nodesByName(state: ClusterState): NodeRecord[] {
  const mirror = state.nodes;
  const cached = sortedNodes.get(state);
  if (cached && cached.revision === mirror.revision && cached.size === mirror.items.size) return cached.list;
  const list = [...mirror.items.values()].map((n) => n.value).sort((a, b) => (a.name < b.name ? -1 : 1));
  sortedNodes.set(state, { revision: mirror.revision, size: mirror.items.size, list });
  return list;
}

/**
 * The live nodes as one pass sees them, plus the placements the pass has decided but not
 * yet committed ("assumed", as the Kubernetes scheduler cache calls them), so that
 * decisions made before a commit account for each other. Candidates are sorted by node
 * name, so every scheduler sees the same ring of nodes.
 */
export class NodeView {
  readonly candidates: NodeCandidate[] = [];
  readonly byName = new Map<string, NodeCandidate>();
  readonly context: PlacementContext = { zoneLoad: new Map() };
  /** Candidates whose ledger is this view's own copy (safe to change in place). */
  readonly #copied = new Set<NodeCandidate>();

  static fromState(state: ClusterState): NodeView {
    const view = new NodeView();
    const keys = state.keys;
    const nodes = nodesByName(state);
    for (const node of nodes) {
      const allocation = state.allocations.items.get(keys.allocation(node.name))?.value ?? {
        node: node.name,
        replicas: {},
      };
      view.add(
        candidateOf(node, allocation, {
          control: state.nodeControls.items.get(keys.nodeControl(node.name))?.value,
          fence: state.fences.items.get(keys.fence(node.name))?.value,
        }),
      );
    }
    return view;
  }

  add(candidate: NodeCandidate): void {
    this.candidates.push(candidate);
    this.byName.set(candidate.node.name, candidate);
    const zone = zoneOf(candidate.node);
    if (zone !== undefined) {
      const count = Object.keys(candidate.allocation.replicas).length;
      this.context.zoneLoad.set(zone, (this.context.zoneLoad.get(zone) ?? 0) + count);
    }
  }

  /** Counts `replica` as placed on `candidate` for the rest of the pass. */
  assume(candidate: NodeCandidate, replica: PendingReplica): void {
    if (!this.#copied.has(candidate)) {
      // The ledger object belongs to the watched copy of etcd: copy it once, then change it.
      candidate.allocation = { node: candidate.allocation.node, replicas: { ...candidate.allocation.replicas } };
      candidate.instanceIds = new Set(candidate.instanceIds);
      this.#copied.add(candidate);
    }
    candidate.allocation.replicas[replicaId(replica.instanceId, replica.ordinal)] = {
      instanceId: replica.instanceId,
      ordinal: replica.ordinal,
      resources: replica.resources,
    };
    (candidate.instanceIds as Set<string>).add(replica.instanceId);
    candidate.allocated = addResources(candidate.allocated, replica.resources);
    const zone = zoneOf(candidate.node);
    if (zone !== undefined) this.context.zoneLoad.set(zone, (this.context.zoneLoad.get(zone) ?? 0) + 1);
  }
}
