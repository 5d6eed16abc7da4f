import type { ContainerLimits, Endpoint, ReplicaStatus } from '@service-foundry/core';
import type { AppliedReplica } from './applied-replicas.js';
import type { PrimaryClaim } from './primary-guard.js';

/**
 * What the agent knows about one replica when it decides the next step (replica-decisions.ts,
 * standalone-decisions.ts): plain data, gathered by replica-observer.ts from Docker, its own
 * memory and etcd, so every decision can be tested without any of them.
 */

/** The replica's container as Docker reports it, in the terms decisions need. */
export interface ObservedContainer {
  id: string;
  running: boolean;
  /** Host port the service port is published on; undefined when Docker publishes none. */
  servicePort?: number;
  /** Where replicas on other nodes reach this one (rule 5); undefined until Docker gives an address. */
  peer?: Endpoint;
  /** The volume mounted at the service's data path. */
  volume?: string;
  /** The image reference it was created from. */
  image?: string;
  /** The CPU and memory limits it runs with. */
  limits?: ContainerLimits;
  /**
   * The upstream its environment names (label `sf.upstream`): what a replica clones from on
   * an empty volume, and follows after a restart until a `follow`. Unlike the applied
   * upstream, it does not change when the replica follows another.
   */
  madeFor?: Endpoint;
}

/** The fields of an applied replica (applied-replicas.ts) that decisions read and status reports carry. */
export type AppliedView = Readonly<
  Omit<AppliedReplica, 'ref' | 'containerId' | 'serviceName' | 'busy' | 'observedWrittenAt'>
>;

/** What the primary key is read for: each purpose is read once per pass, right before it counts. */
export type ClaimPurpose = 'create' | 'start' | 'promote';

/** What creating a container needs (image, secret, volume), as looked up in this pass. */
export type CreatePrerequisites =
  | { kind: 'image-missing'; image: string }
  | { kind: 'secret-missing' }
  | { kind: 'secret-invalid' }
  | { kind: 'ready'; volume: string };

export type StepOutcome = { ok: true } | { ok: false; error: string };

/**
 * Steps tried at most once per pass (a failure waits for the retry): the replication steps
 * of rule 4 (rule 4f), and changing the container's limits (rule l1).
 */
export type ReplicationStep = 'role' | 'promote' | 'follow' | 'configure' | 'limits';

/**
 * What the earlier steps of this reconcile pass found and did. Decisions read it; only the
 * executor writes it. A pass ends when a decision says so, and the next pass starts afresh.
 */
export interface PassFacts {
  /** Decisions made so far in this pass. */
  looks: number;
  claims: Partial<Record<ClaimPurpose, PrimaryClaim>>;
  prerequisites?: CreatePrerequisites;
  /** The container this pass started. */
  started?: string;
  /** The outcome of this pass's readiness wait (its status says why when not ready). */
  readiness?: { ready: true; port: number } | { ready: false };
  tried: Partial<Record<ReplicationStep, StepOutcome>>;
}

export function newPassFacts(): PassFacts {
  return { looks: 0, claims: {}, tried: {} };
}

export interface ReplicaObservation {
  /** This node's name (volume names carry it). */
  node: string;
  /** The node address services publish their ports on (status `host`). */
  address: string;
  /** A failed container is started again no sooner than this after its failure. */
  restartBackoffMs: number;
  /** The node is self-fenced (self-fence.ts): no primary may start or be promoted. */
  selfFenced: boolean;
  container?: ObservedContainer;
  /** What is applied inside `container`; known (adopted if need be) whenever the container is. */
  applied?: AppliedView;
  /** This agent's latest status of the replica. */
  status?: ReplicaStatus;
  pass: Readonly<PassFacts>;
}
