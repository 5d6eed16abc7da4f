/**
 * "Why is this replica on that node": the scheduler's own filters and scores
 * (packages/scheduler/src/placement), run now against the node as it is, with the replica
 * itself taken out of the node's ledger — so the answer is what the scheduler would say
 * if it placed the replica again this moment. Scores use the scheduler's default weights.
 * Pure: explain-analysis.ts feeds it the records it read.
 */

import type { FilterCheck, NodeView, ScoreCheck } from '@service-foundry/api';
import type { PlacementRecord, Resources } from '@service-foundry/core';
import type { NodeCandidate, PendingReplica, PlacementContext } from '@service-foundry/scheduler';
import {
  binPack,
  defaultScoreWeights,
  fitsCapacity,
  leastAllocated,
  nodeAlive,
  nodeAntiAffinity,
  notFenced,
  requiredLabels,
  schedulable,
  volumeLocality,
  zoneAntiAffinity,
  zoneSpread,
} from '@service-foundry/scheduler';

/** In the scheduler's order: the first that fails is the reason users see. */
const filters = { nodeAlive, notFenced, schedulable, requiredLabels, nodeAntiAffinity, zoneAntiAffinity, fitsCapacity };
const scorers = { leastAllocated, binPack, zoneSpread, volumeLocality };

const zero: Resources = { cpuMillis: 0, memoryMb: 0, diskMb: 0 };

function add(a: Resources, b: Resources, sign = 1): Resources {
  return {
    cpuMillis: a.cpuMillis + sign * b.cpuMillis,
    memoryMb: a.memoryMb + sign * b.memoryMb,
    diskMb: a.diskMb + sign * b.diskMb,
  };
}

/** The scheduler's view of a node, from the operator API's node view, without replica `skip`. */
export function candidateOf(view: NodeView, skip?: { instanceId: string; ordinal: number }): NodeCandidate {
  const held = view.replicas.filter((r) => !(skip && r.instanceId === skip.instanceId && r.ordinal === skip.ordinal));
  const allocated = held.reduce((sum, r) => add(sum, r.resources), zero);
  return {
    node: {
      name: view.name,
      address: view.address ?? '',
      capacity: view.capacity ?? zero,
      labels: view.labels,
      startedAt: '',
    },
    alive: view.alive,
    allocation: {
      node: view.name,
      replicas: Object.fromEntries(held.map((r) => [`${r.instanceId}/${r.ordinal}`, r])),
    },
    allocated,
    instanceIds: new Set(held.map((r) => r.instanceId)),
    control: view.control ? { node: view.name, ...view.control } : undefined,
    fence: view.fence ? { node: view.name, state: view.fence, reason: '', by: '', at: '' } : undefined,
  };
}

export interface PlacementWhy {
  filters: FilterCheck[];
  scores: ScoreCheck[];
  alternatives: Array<{ node: string; total: number }>;
}

/** Filters and scores of `placement`'s node, and every node's total, for one replica. */
export function explainPlacement(
  placement: PlacementRecord,
  siblings: readonly PlacementRecord[],
  resources: Resources,
  requiredNodeLabels: Readonly<Record<string, string>>,
  nodes: readonly NodeView[],
): PlacementWhy {
  const byName = new Map(nodes.map((n) => [n.name, n]));
  const replica: PendingReplica = {
    instanceId: placement.instanceId,
    ordinal: placement.ordinal,
    resources,
    requiredLabels: requiredNodeLabels,
    siblings: siblings
      .filter((s) => s.ordinal !== placement.ordinal)
      .map((s) => ({ ordinal: s.ordinal, node: s.node, zone: byName.get(s.node)?.labels.zone })),
    previousNodes: placement.previousNodes ?? [],
  };
  const self = { instanceId: placement.instanceId, ordinal: placement.ordinal };
  const context: PlacementContext = { zoneLoad: new Map() };
  for (const view of nodes) {
    const zone = view.labels.zone;
    if (zone === undefined) continue;
    const count = view.replicas.filter((r) => !(r.instanceId === self.instanceId && r.ordinal === self.ordinal)).length;
    context.zoneLoad.set(zone, (context.zoneLoad.get(zone) ?? 0) + count);
  }
  const scoreOf = (candidate: NodeCandidate): ScoreCheck[] =>
    (Object.keys(scorers) as Array<keyof typeof scorers>)
      .filter((name) => defaultScoreWeights[name] > 0)
      .map((name) => ({
        score: name,
        weight: defaultScoreWeights[name],
        value: Math.round(scorers[name](replica, candidate, context)),
      }));
  const total = (scores: ScoreCheck[]) => scores.reduce((sum, s) => sum + s.weight * s.value, 0);
  const checks = (candidate: NodeCandidate): FilterCheck[] =>
    Object.entries(filters).map(([filter, check]) => {
      const reason = check(replica, candidate) ?? '';
      return { filter, passed: reason === '', reason };
    });

  const own = byName.get(placement.node);
  const ownCandidate = own ? candidateOf(own, self) : undefined;
  const alternatives = nodes
    .map((view) => candidateOf(view, self))
    .filter((c) => checks(c).every((f) => f.passed))
    .map((c) => ({ node: c.node.name, total: total(scoreOf(c)) }))
    .sort((a, b) => b.total - a.total || a.node.localeCompare(b.node));
  return {
    filters: ownCandidate
      ? checks(ownCandidate)
      : [{ filter: 'nodeAlive', passed: false, reason: `node ${placement.node} is not known any more` }],
    scores: ownCandidate ? scoreOf(ownCandidate) : [],
    alternatives,
  };
}
