import type { NodeAllocation, NodeControlRecord, NodeFenceRecord, NodeRecord, Resources } from '@service-foundry/core';

/** Where one of the instance's other replicas sits. */
export interface SiblingPlacement {
  ordinal: number;
  node: string;
  /** The node's `zone` label; undefined when the node has none (or is unknown). */
  zone: string | undefined;
}

/** A replica waiting for a node, with what its filters and scores need to know. */
export interface PendingReplica {
  instanceId: string;
  ordinal: number;
  resources: Resources;
  /** Labels a node must carry (the plan's `constraints.nodeLabels`). @default {} */
  requiredLabels?: Readonly<Record<string, string>>;
  /** The instance's other replicas that are placed (or being placed in this pass). @default [] */
  siblings?: readonly SiblingPlacement[];
  /** Nodes that held this replica before, newest first (placement history). @default [] */
  previousNodes?: readonly string[];
}

/** What the placement pipeline knows about one node. */
export interface NodeCandidate {
  node: NodeRecord;
  /** False when the node's lease is gone (its record is the last one seen). */
  alive: boolean;
  allocation: NodeAllocation;
  /** Sum of the allocation's replicas. */
  allocated: Resources;
  /** Instance ids the allocation holds a replica of (for anti-affinity without a scan). */
  instanceIds: ReadonlySet<string>;
  control: NodeControlRecord | undefined;
  fence: NodeFenceRecord | undefined;
}

/** Cluster-wide facts some scores weigh, updated as a pass assumes its own decisions. */
export interface PlacementContext {
  /** Replicas allocated per zone label value. */
  zoneLoad: Map<string, number>;
}

/** A filter keeps a node or says why not; the reason is shown to users when nothing fits. */
export type Filter = (replica: PendingReplica, candidate: NodeCandidate) => string | undefined;

/** A score in [0, 100]; higher is better. */
export type Scorer = (replica: PendingReplica, candidate: NodeCandidate, context: PlacementContext) => number;

/** The node label that names a node's failure zone. */
export const zoneLabel = 'zone';

export function zoneOf(node: NodeRecord | undefined): string | undefined {
  return node?.labels[zoneLabel];
}
