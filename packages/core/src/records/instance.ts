import type { JSONSchemaType } from 'ajv';
import { defineRecord } from './codec.js';
import {
  anyObject,
  count,
  type FencingPolicy,
  fencingPolicies,
  flag,
  type IoPolicy,
  imageReferencePattern,
  ioPolicySchema,
  nonEmptyText,
  optional,
  ordinal,
  port,
  type Resources,
  resourcesSchema,
  text,
  timestamp,
} from './shared.js';

export const instancePhases = ['provisioning', 'ready', 'deprovisioning', 'failed'] as const;
export type InstancePhase = (typeof instancePhases)[number];
export const operationTypes = ['provision', 'deprovision', 'update'] as const;
export type OperationType = (typeof operationTypes)[number];
export const operationStates = ['in progress', 'succeeded', 'failed'] as const;
export type OperationState = (typeof operationStates)[number];

/** What an update asked for: a re-sent identical request answers with the same operation (OSB). */
export interface UpdateRequest {
  planId?: string;
  parameters?: Record<string, unknown>;
  maintenanceVersion?: string;
  /**
   * A password rotation (`sf rotate-credentials`): the broker, which alone can open the
   * secret, takes it through its steps and ends the operation; the controller leaves it.
   */
  rotateCredentials?: boolean;
}

export interface OperationRecord {
  id: string;
  type: OperationType;
  state: OperationState;
  description: string;
  startedAt: string;
  /** Updates: what was asked (absent on updates not asked through OSB, e.g. a restore). */
  request?: UpdateRequest;
  /** A failed update or deprovision: whether the instance still serves (OSB `instance_usable`). Absent: true. */
  instanceUsable?: boolean;
  /** A failed update: whether asking again may succeed (OSB `update_repeatable`). Absent: true. */
  updateRepeatable?: boolean;
  /**
   * A plan change that adds replicas: the IO settings of the new plan, put in force once
   * every new replica runs. Applied at once, a synchronous durability would hold every
   * commit while the new replicas clone.
   */
  pendingIo?: IoPolicy;
}

/** Per-instance failover rules, from the plan and the user's parameters. */
export interface FailoverPolicy {
  fencing: FencingPolicy;
  /** How long fencing may take before it counts as failed. */
  fencingTimeoutSeconds: number;
  /** async: a replica further behind than this is not promoted. */
  maxLagBytes: number;
}

/** A platform's tenant boundary (Cloud Foundry organization and space; Kubernetes cluster and namespace). */
export interface InstanceScope {
  organization: string;
  space: string;
}

export const restoreStates = ['stopping', 'copying', 'copied'] as const;

/** Where a restored instance's data comes from, and how far the copy has come. */
export interface InstanceRestore {
  /** The instance the backup was taken of. */
  instanceId: string;
  backupId: string;
  /** Node whose agent holds the backup. */
  node: string;
  /**
   * In place: `stopping` (every replica stops) → `copying` → `copied`. Into a new
   * instance: `copying` until the first replica's volume holds the backup; then roles are
   * given out.
   */
  state: (typeof restoreStates)[number];
  /** The instance's own backup restored over its data (`sf restore NAME BACKUP`). */
  inPlace?: boolean;
  /** The replica that receives the backup (and becomes the first primary); set when the copy starts. */
  ordinal?: number;
}

/** Desired state of a service instance (`instances/<id>`), written by the broker. */
export interface InstanceRecord {
  id: string;
  /** Human name from the platform context (CF `instance_name`), unique among live instances of its scope. */
  name: string;
  serviceId: string;
  planId: string;
  serviceName: string;
  planName: string;
  parameters: Record<string, unknown>;
  replicas: number;
  resources: Resources;
  /** Port the router listens on for this instance. */
  routerPort: number;
  context: Record<string, unknown>;
  createdAt: string;
  phase: InstancePhase;
  message: string;
  operation: OperationRecord;
  /** IO settings; absent on instances from before replication (treated as async/fsync). */
  io?: IoPolicy;
  failover?: FailoverPolicy;
  /** Set when the instance was created from a backup (`sf restore … --as NEW`). */
  restore?: InstanceRestore;
  /**
   * Where the name is unique: the platform's organization and space. Absent: the operators'
   * own scope (instances `sf` created without a platform, and records from before scopes).
   */
  scope?: InstanceScope;
  /**
   * The plan's `maintenance_info.version` the instance runs (image and configuration
   * generation), set at provision. Absent: created before versions were recorded.
   */
  maintenanceVersion?: string;
  /**
   * The container image of that version (the catalog's `runtime.image` at provision or at
   * the last upgrade). The controller rolls every replica onto it, one at a time (assignment
   * `image`). Absent: from before upgrades; each container keeps the image it was created with.
   */
  image?: string;
}

const updateRequestSchema: JSONSchemaType<UpdateRequest> = {
  type: 'object',
  required: [],
  additionalProperties: true,
  properties: {
    planId: optional(text),
    parameters: optional(anyObject),
    maintenanceVersion: optional(text),
    rotateCredentials: optional(flag),
  },
};

const operationSchema: JSONSchemaType<OperationRecord> = {
  type: 'object',
  required: ['id', 'type', 'state', 'description', 'startedAt'],
  additionalProperties: true,
  properties: {
    id: text,
    type: { type: 'string', enum: operationTypes },
    state: { type: 'string', enum: operationStates },
    description: text,
    startedAt: timestamp,
    request: optional(updateRequestSchema),
    instanceUsable: optional(flag),
    updateRepeatable: optional(flag),
    pendingIo: optional(ioPolicySchema),
  },
};

export const failoverPolicySchema: JSONSchemaType<FailoverPolicy> = {
  type: 'object',
  required: ['fencing', 'fencingTimeoutSeconds', 'maxLagBytes'],
  additionalProperties: true,
  properties: {
    fencing: { type: 'string', enum: fencingPolicies },
    fencingTimeoutSeconds: { type: 'number', minimum: 0 },
    maxLagBytes: { type: 'number', minimum: 0 },
  },
};

const restoreSchema: JSONSchemaType<InstanceRestore> = {
  type: 'object',
  required: ['instanceId', 'backupId', 'node', 'state'],
  additionalProperties: true,
  properties: {
    instanceId: nonEmptyText,
    backupId: nonEmptyText,
    node: nonEmptyText,
    state: { type: 'string', enum: restoreStates },
    inPlace: optional(flag),
    ordinal: optional(ordinal),
  },
};

const scopeSchema: JSONSchemaType<InstanceScope> = {
  type: 'object',
  required: ['organization', 'space'],
  additionalProperties: true,
  properties: { organization: text, space: text },
};

const instanceSchema: JSONSchemaType<InstanceRecord> = {
  type: 'object',
  required: [
    'id',
    'name',
    'serviceId',
    'planId',
    'serviceName',
    'planName',
    'parameters',
    'replicas',
    'resources',
    'routerPort',
    'context',
    'createdAt',
    'phase',
    'message',
    'operation',
  ],
  additionalProperties: true,
  properties: {
    id: nonEmptyText,
    name: text,
    serviceId: text,
    planId: text,
    serviceName: text,
    planName: text,
    parameters: anyObject,
    replicas: count,
    resources: resourcesSchema,
    routerPort: port,
    context: anyObject,
    createdAt: timestamp,
    phase: { type: 'string', enum: instancePhases },
    message: text,
    operation: operationSchema,
    io: optional(ioPolicySchema),
    failover: optional(failoverPolicySchema),
    restore: optional(restoreSchema),
    scope: optional(scopeSchema),
    maintenanceVersion: optional(nonEmptyText),
    image: optional({ type: 'string', pattern: imageReferencePattern }),
  },
};

export const instanceCodec = defineRecord<InstanceRecord>({ name: 'instance', schema: instanceSchema });
