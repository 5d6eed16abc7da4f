import type { JSONSchemaType } from 'ajv';
import { defineRecord } from './codec.js';
import { type RotationPhase, rotationPhases } from './secret.js';
import {
  type ContainerLimits,
  containerLimitsSchema,
  type Endpoint,
  endpointSchema,
  epoch,
  type IoPolicy,
  ioPolicySchema,
  nonEmptyText,
  optional,
  ordinal,
  port,
  type ReplicaRole,
  replicaRoles,
  text,
  timestamp,
} from './shared.js';

export const replicaStates = ['creating', 'starting', 'running', 'failed', 'removing', 'stopped'] as const;
export type ReplicaState = (typeof replicaStates)[number];

/** Actual state of a replica (`status/<id>/<ordinal>`), written by its agent under the node lease. */
export interface ReplicaStatus {
  instanceId: string;
  ordinal: number;
  node: string;
  state: ReplicaState;
  /** Where the service answers (node address and published port), once running. */
  host?: string;
  port?: number;
  containerId?: string;
  message: string;
  updatedAt: string;
  /** Role and epoch as applied inside the running service. */
  role?: ReplicaRole;
  epoch?: number;
  /** Where other replicas reach this one for replication (container address on one machine). */
  peer?: Endpoint;
  /** Replication position (Postgres: LSN as a decimal integer); higher is more advanced. */
  position?: string;
  positionAt?: string;
  /** The IO settings in force, once applied. */
  io?: IoPolicy;
  generation?: number;
  /** The image the running container was created from (assignment `image` during an upgrade). */
  image?: string;
  /** The CPU and memory limits the container runs with (Docker's, read back after each change). */
  limits?: ContainerLimits;
  /**
   * The password rotation the running server has taken on (the catalog's `rotatePasswords`
   * ran with this secret generation and phase). Absent: none since the container started,
   * or the instance's passwords were never rotated.
   */
  passwords?: AppliedPasswords;
  /**
   * An agent running the failsafe: the nodes holding the other replicas of this instance,
   * read from etcd at `revision` (the nodes its failsafe asks when etcd is gone). The
   * controller gives a replica its first role only once the primary's status lists its
   * node at a revision at or after the replica was placed (docs/failover.md, rule C2).
   */
  peers?: FailsafePeers;
}

/** What a failsafe agent knows of an instance's other replicas (`revision`: `'0'` for nothing yet). */
export interface FailsafePeers {
  nodes: string[];
  revision: string;
}

/** A secret generation and rotation phase a server has taken on. */
export interface AppliedPasswords {
  generation: number;
  phase: RotationPhase;
}

const statusSchema: JSONSchemaType<ReplicaStatus> = {
  type: 'object',
  required: ['instanceId', 'ordinal', 'node', 'state', 'message', 'updatedAt'],
  additionalProperties: true,
  properties: {
    instanceId: nonEmptyText,
    ordinal,
    node: nonEmptyText,
    state: { type: 'string', enum: replicaStates },
    host: optional(text),
    port: optional(port),
    containerId: optional(text),
    message: text,
    updatedAt: timestamp,
    role: optional({ type: 'string', enum: replicaRoles }),
    epoch: optional(epoch),
    peer: optional(endpointSchema),
    position: optional({ type: 'string', pattern: '^[0-9]+$' }),
    positionAt: optional(timestamp),
    io: optional(ioPolicySchema),
    generation: optional(epoch),
    image: optional(text),
    limits: optional(containerLimitsSchema),
    passwords: {
      type: 'object',
      required: ['generation', 'phase'],
      additionalProperties: false,
      properties: {
        generation: { type: 'integer', minimum: 1 },
        phase: { type: 'string', enum: rotationPhases },
      },
      nullable: true,
    },
    peers: {
      type: 'object',
      required: ['nodes', 'revision'],
      additionalProperties: false,
      properties: {
        nodes: { type: 'array', items: nonEmptyText, maxItems: 64 },
        revision: { type: 'string', pattern: '^[0-9]{1,20}$' },
      },
      nullable: true,
    },
  },
};

export const statusCodec = defineRecord<ReplicaStatus>({ name: 'replica status', schema: statusSchema });
