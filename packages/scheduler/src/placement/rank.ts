import { defaultFilters } from './filters/index.js';
import { defaultScoreWeights, type WeightedScorer, weightedScorers } from './scores/index.js';
import type { Filter, NodeCandidate, PendingReplica, PlacementContext } from './types.js';

export interface RankResult {
  /** Feasible nodes, best first. */
  ranked: NodeCandidate[];
  /** Why the other nodes were rejected: reason → how many nodes gave it. */
  rejections: Map<string, number>;
}

const emptyContext: PlacementContext = { zoneLoad: new Map() };

/** The first filter's objection to the node, if any. */
export function rejectionOf(
  replica: PendingReplica,
  candidate: NodeCandidate,
  filters: readonly Filter[],
): string | undefined {
  for (const filter of filters) {
    const reason = filter(replica, candidate);
    if (reason) return reason;
  }
  return undefined;
}

export function scoreOf(
  replica: PendingReplica,
  candidate: NodeCandidate,
  scorers: readonly WeightedScorer[],
  context: PlacementContext,
): number {
  let score = 0;
  for (const { scorer, weight } of scorers) score += weight * scorer(replica, candidate, context);
  return score;
}

/**
 * Filter, then score: the Kubernetes scheduling framework's first two phases over every
 * candidate. Pure and deterministic (ties broken by node name) so every decision can be
 * unit-tested.
 */
export function rankNodes(
  replica: PendingReplica,
  candidates: Iterable<NodeCandidate>,
  filters: readonly Filter[] = defaultFilters,
  scorers: readonly WeightedScorer[] = weightedScorers(defaultScoreWeights),
  context: PlacementContext = emptyContext,
): RankResult {
  const feasible: Array<{ candidate: NodeCandidate; score: number }> = [];
  const rejections = new Map<string, number>();
  for (const candidate of candidates) {
    const rejected = rejectionOf(replica, candidate, filters);
    if (rejected) {
      rejections.set(rejected, (rejections.get(rejected) ?? 0) + 1);
      continue;
    }
    feasible.push({ candidate, score: scoreOf(replica, candidate, scorers, context) });
  }
  feasible.sort((a, b) => b.score - a.score || a.candidate.node.name.localeCompare(b.candidate.node.name));
  return { ranked: feasible.map((f) => f.candidate), rejections };
}

export interface PickOptions {
  filters: readonly Filter[];
  scorers: readonly WeightedScorer[];
  context: PlacementContext;
  /** Stop filtering once this many feasible nodes are found (Kubernetes' percentageOfNodesToScore). */
  nodesToScore: number;
  /** Where the scan starts; rotating it spreads concurrent schedulers over different nodes. */
  start: number;
}

export type PickResult = { node: NodeCandidate } | { node: undefined; rejections: Map<string, number> };

/**
 * Picks the best of the first `nodesToScore` feasible nodes met scanning from `start`.
 * At a thousand nodes, filtering all of them for every replica costs more than the
 * placement is worth; a sample this size still finds a near-best node. When nothing is
 * feasible every node has been looked at, so the rejections explain the whole cluster.
 */
export function pickNode(replica: PendingReplica, nodes: readonly NodeCandidate[], options: PickOptions): PickResult {
  const count = nodes.length;
  const rejections = new Map<string, number>();
  let best: NodeCandidate | undefined;
  let bestScore = Number.NEGATIVE_INFINITY;
  let found = 0;
  for (let i = 0; i < count && found < options.nodesToScore; i++) {
    const candidate = nodes[(options.start + i) % count];
    if (!candidate) continue;
    const rejected = rejectionOf(replica, candidate, options.filters);
    if (rejected) {
      rejections.set(rejected, (rejections.get(rejected) ?? 0) + 1);
      continue;
    }
    found++;
    const score = scoreOf(replica, candidate, options.scorers, options.context);
    if (score > bestScore || (score === bestScore && best && candidate.node.name < best.node.name)) {
      best = candidate;
      bestScore = score;
    }
  }
  return best ? { node: best } : { node: undefined, rejections };
}

/** "no node fits (997 nodes: not enough free 4 GiB memory; 3 nodes: cordoned)" */
export function describeRejections(rejections: Map<string, number>, nodeCount: number): string {
  if (nodeCount === 0) return 'no live nodes';
  const parts = [...rejections]
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .map(([reason, count]) => `${count} node${count === 1 ? '' : 's'}: ${reason}`);
  return `no node fits (${parts.join('; ')})`;
}
