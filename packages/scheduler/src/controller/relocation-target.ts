import type { NodeAllocation, NodeControlRecord, NodeFenceRecord, NodeRecord, Resources } from '@service-foundry/core';

export interface TargetCandidates {
  instanceId: string;
  ordinal: number;
  from: string;
  /** The operator's choice, checked like any other candidate. */
  requested: string | undefined;
  resources: Resources;
  /** Live nodes. */
  nodes: readonly NodeRecord[];
  allocations: ReadonlyMap<string, NodeAllocation>;
  controls: ReadonlyMap<string, NodeControlRecord>;
  fences: ReadonlyMap<string, NodeFenceRecord>;
  /** Nodes holding another replica of the same instance. */
  siblings: ReadonlySet<string>;
}

export type TargetChoice = { node: string } | { problems: string[] };

/** Why `node` cannot take the replica, or undefined when it can. */
function unfit(node: NodeRecord, input: TargetCandidates): string | undefined {
  if (node.name === input.from) return 'it is the source';
  if (node.volumeUrl === undefined) return 'it serves no volumes (agent config "volumes")';
  const fence = input.fences.get(node.name);
  if (fence && (fence.state === 'fenced' || fence.state === 'fencing')) return `it is ${fence.state}`;
  const control = input.controls.get(node.name);
  if (control?.draining) return 'it is draining';
  if (control?.cordoned) return 'it is cordoned';
  if (input.siblings.has(node.name)) return 'it holds another replica of the instance';
  const used = usedResources(input.allocations.get(node.name));
  const want = input.resources;
  const cap = node.capacity;
  if (used.cpuMillis + want.cpuMillis > cap.cpuMillis) return 'not enough CPU';
  if (used.memoryMb + want.memoryMb > cap.memoryMb) return 'not enough memory';
  if (used.diskMb + want.diskMb > cap.diskMb) return 'not enough disk';
  return undefined;
}

function usedResources(allocation: NodeAllocation | undefined): Resources {
  const used = { cpuMillis: 0, memoryMb: 0, diskMb: 0 };
  for (const replica of Object.values(allocation?.replicas ?? {})) {
    used.cpuMillis += replica.resources.cpuMillis;
    used.memoryMb += replica.resources.memoryMb;
    used.diskMb += replica.resources.diskMb;
  }
  return used;
}

/** Free share of the scarcest resource after placing the replica: higher is better. */
function headroom(node: NodeRecord, input: TargetCandidates): number {
  const used = usedResources(input.allocations.get(node.name));
  const cap = node.capacity;
  const want = input.resources;
  return Math.min(
    1 - (used.cpuMillis + want.cpuMillis) / cap.cpuMillis,
    1 - (used.memoryMb + want.memoryMb) / cap.memoryMb,
    1 - (used.diskMb + want.diskMb) / cap.diskMb,
  );
}

/**
 * Where a relocated replica goes: the operator's node if it qualifies, otherwise the
 * qualifying node with the most headroom (ties by name, so every controller agrees).
 * Filters: live, serves volumes, not fenced, not cordoned or draining, no sibling
 * replica, capacity left in its ledger.
 */
export function chooseRelocationTarget(input: TargetCandidates): TargetChoice {
  if (input.requested !== undefined) {
    const node = input.nodes.find((n) => n.name === input.requested);
    if (!node) return { problems: [`node ${input.requested} is not alive`] };
    const problem = unfit(node, input);
    return problem ? { problems: [`node ${input.requested}: ${problem}`] } : { node: node.name };
  }
  const problems: string[] = [];
  const fit: NodeRecord[] = [];
  for (const node of input.nodes) {
    const problem = unfit(node, input);
    if (problem) problems.push(`${node.name}: ${problem}`);
    else fit.push(node);
  }
  fit.sort((a, b) => headroom(b, input) - headroom(a, input) || a.name.localeCompare(b.name));
  const best = fit[0];
  if (best) return { node: best.name };
  return { problems: problems.length ? problems : ['no node is alive'] };
}
