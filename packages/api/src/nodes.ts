import type { NodeControlRecord, NodeFenceRecord, Resources } from '@service-foundry/core';

/** A replica a node holds, as its allocation records it. */
export interface NodeReplicaView {
  instanceId: string;
  ordinal: number;
  resources: Resources;
  /** The agent's state of the replica on this node; null before it reported. */
  state: string | null;
}

/** One node in `GET /sf/v1/nodes`. */
export interface NodeView {
  name: string;
  /** False when only an allocation is left: the agent's lease expired. */
  alive: boolean;
  address: string | null;
  labels: Record<string, string>;
  capacity: Resources | null;
  allocated: Resources;
  replicas: NodeReplicaView[];
  /** Operator controls (`sf node cordon|drain`); null when never set. */
  control: Pick<NodeControlRecord, 'cordoned' | 'draining' | 'reason' | 'by' | 'updatedAt'> | null;
  /** STONITH state of the node; null when never fenced. */
  fence: NodeFenceRecord['state'] | null;
}

/** What `POST /sf/v1/nodes/:node/{cordon,uncordon,drain}` answers. */
export interface NodeControlView {
  node: string;
  control: NodeControlRecord;
  /** Replicas the node still holds (`<instance>/<ordinal>`). */
  remaining: string[];
  message: string;
}
