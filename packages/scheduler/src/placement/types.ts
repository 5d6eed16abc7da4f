import type { NodeAllocation, NodeRecord, Resources } from '@service-foundry/core';

/** A replica waiting for a node. */
export interface PendingReplica {
  instanceId: string;
  ordinal: number;
  resources: Resources;
}

/** What the placement pipeline knows about one live node. */
export interface NodeCandidate {
  node: NodeRecord;
  allocation: NodeAllocation;
  /** Sum of the allocation's replicas. */
  allocated: Resources;
}

/** A filter keeps a node or says why not; the reason is shown to users when nothing fits. */
export type Filter = (replica: PendingReplica, candidate: NodeCandidate) => string | undefined;

/** A score in [0, 100]; higher is better. */
export type Scorer = (replica: PendingReplica, candidate: NodeCandidate) => number;
