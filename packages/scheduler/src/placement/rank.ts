import { defaultFilters } from './filters.js';
import { leastAllocated } from './scores.js';
import type { Filter, NodeCandidate, PendingReplica, Scorer } from './types.js';

export interface WeightedScorer {
  scorer: Scorer;
  weight: number;
}

export interface RankResult {
  /** Feasible nodes, best first. */
  ranked: NodeCandidate[];
  /** When nothing is feasible: why, per reason, with how many nodes gave it. */
  rejections: Map<string, number>;
}

/**
 * Filter, then score: the Kubernetes scheduling framework's first two phases. Pure and
 * deterministic (ties broken by node name) so every decision can be unit-tested.
 */
export function rankNodes(
  replica: PendingReplica,
  candidates: Iterable<NodeCandidate>,
  filters: readonly Filter[] = defaultFilters,
  scorers: readonly WeightedScorer[] = [{ scorer: leastAllocated, weight: 1 }],
): RankResult {
  const feasible: Array<{ candidate: NodeCandidate; score: number }> = [];
  const rejections = new Map<string, number>();
  for (const candidate of candidates) {
    let rejected: string | undefined;
    for (const filter of filters) {
      rejected = filter(replica, candidate);
      if (rejected) break;
    }
    if (rejected) {
      rejections.set(rejected, (rejections.get(rejected) ?? 0) + 1);
      continue;
    }
    let score = 0;
    for (const { scorer, weight } of scorers) score += weight * scorer(replica, candidate);
    feasible.push({ candidate, score });
  }
  feasible.sort((a, b) => b.score - a.score || a.candidate.node.name.localeCompare(b.candidate.node.name));
  return { ranked: feasible.map((f) => f.candidate), rejections };
}

/** "no node fits: 3 nodes: not enough free 512 MB memory; 1 node: already holds …" */
export function describeRejections(rejections: Map<string, number>, liveNodes: number): string {
  if (liveNodes === 0) return 'no live nodes';
  const parts = [...rejections].map(([reason, count]) => `${count} node${count === 1 ? '' : 's'}: ${reason}`);
  return `no node fits (${parts.join('; ')})`;
}
