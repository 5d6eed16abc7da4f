import type { JSONSchemaType } from 'ajv';
import { keySegmentPattern } from '../keyspace.js';
import { parseServedVolume } from '../served-volumes.js';
import { defineRecord, keyTail } from './codec.js';
import {
  type Endpoint,
  epoch,
  flag,
  type IoPolicy,
  imageReferencePattern,
  ioPolicySchema,
  nonEmptyText,
  optional,
  ordinal,
  type ReplicaRole,
  type Resources,
  replicaRoles,
  text,
  timestamp,
} from './shared.js';

/** Which node holds a replica (`placements/<id>/<ordinal>`); written in the same transaction as the assignment. */
export interface PlacementRecord {
  instanceId: string;
  ordinal: number;
  node: string;
  placedAt: string;
  scheduler: string;
  /**
   * Nodes that held this replica before it was re-placed, newest first (at most a few).
   * Their volumes may still hold a copy of the data; the scheduler's volume-locality score
   * prefers them.
   */
  previousNodes?: string[];
}

/**
 * `stopped`: the container is stopped gracefully and the volume kept (a relocation's
 * source while its final delta is copied).
 */
export const desiredReplicaStates = ['running', 'removed', 'stopped'] as const;
export type DesiredReplicaState = (typeof desiredReplicaStates)[number];

/** Where a seeded volume comes from: a volume served by a node's agent. */
export interface SeedSource {
  node: string;
  /**
   * Name on that agent's volume server: `replica.<instanceId>.<ordinal>` (the volume of a
   * replica on that node) or `backup.<instanceId>.<backupId>` (a backup in its store).
   */
  volume: string;
}

export interface SeedRecord {
  from: SeedSource;
  /** Incremented to ask for another pull; the agent reports the round it completed. */
  round: number;
  /**
   * Volume shipping: pull again this long after each complete copy, for as long as the
   * seed stays (a standby kept within this many seconds of its primary: the RPO).
   */
  everySeconds?: number;
  /**
   * The last round of a relocation (the source is stopped), and the role the copy takes at
   * the switch: the agent also creates the replica's container meanwhile, without starting
   * it, so the switch only has to start it.
   */
  final?: ReplicaRole;
}

/** What a node's agent must run (`assignments/<node>/<id>/<ordinal>`); the agent watches its own prefix. */
export interface AssignmentRecord {
  instanceId: string;
  ordinal: number;
  serviceName: string;
  planName: string;
  resources: Resources;
  desired: DesiredReplicaState;
  /**
   * Role the controller gives the replica. Absent: not decided yet, the agent creates
   * nothing. `primary` with epoch 0 is the bootstrap primary (no primary key yet).
   */
  role?: ReplicaRole;
  /**
   * Primary epoch this role belongs to. An agent starts or promotes a primary only while
   * `primary/<id>` still has this mod revision (I2).
   */
  epoch?: number;
  /** Replicas: where the primary's service answers for replication. */
  upstream?: Endpoint;
  /** Service IO settings to apply. */
  io?: IoPolicy;
  /** Bumped when the replica must be rebuilt from the primary on a fresh volume. */
  generation?: number;
  /**
   * Fill the replica's volume from another agent's volume before any container is made.
   * The agent pulls once per `round` (a later round sends only what changed) and reports in
   * `transfers/<id>/<ordinal>/<node>`; while `seed` is set it starts nothing.
   */
  seed?: SeedRecord;
  /** With `desired: removed`: remove the container but keep the volume (an old copy kept as a standby). */
  keepVolume?: boolean;
  /**
   * With `desired: removed`: the replica now lives on this node, which owns its status key;
   * the old node removes its copy without writing the replica's status.
   */
  movedTo?: string;
  /**
   * Container image to run (the instance's `image` when this replica was last created or
   * upgraded). Absent: the catalog's current `runtime.image`, and a running container is
   * left on whatever image it was created with. A running container of another image is
   * replaced on the same volume (an upgrade step; the controller rolls one replica at a time).
   */
  image?: string;
}

const keySegment = { type: 'string', pattern: keySegmentPattern } as const;
/** Host names and IPv4 addresses; nothing that could smuggle arguments into a command. */
const hostPattern = '^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$';
const positive = { type: 'integer', minimum: 1 } as const;

const placementSchema: JSONSchemaType<PlacementRecord> = {
  type: 'object',
  required: ['instanceId', 'ordinal', 'node', 'placedAt', 'scheduler'],
  additionalProperties: true,
  properties: {
    instanceId: nonEmptyText,
    ordinal,
    node: nonEmptyText,
    placedAt: timestamp,
    scheduler: text,
    previousNodes: optional({ type: 'array', items: nonEmptyText }),
  },
};

export const seedSourceSchema: JSONSchemaType<SeedSource> = {
  type: 'object',
  required: ['node', 'volume'],
  additionalProperties: true,
  properties: { node: keySegment, volume: nonEmptyText },
};

const seedSchema: JSONSchemaType<SeedRecord> = {
  type: 'object',
  required: ['from', 'round'],
  additionalProperties: true,
  properties: {
    from: seedSourceSchema,
    round: positive,
    everySeconds: optional({ type: 'number', minimum: 0 }),
    final: optional({ type: 'string', enum: replicaRoles }),
  },
};

// An agent builds containers from these: stricter than the type (what it can run safely).
const assignmentSchema: JSONSchemaType<AssignmentRecord> = {
  type: 'object',
  required: ['instanceId', 'ordinal', 'serviceName', 'planName', 'resources', 'desired'],
  additionalProperties: true,
  properties: {
    instanceId: keySegment,
    ordinal,
    serviceName: keySegment,
    planName: text,
    resources: {
      type: 'object',
      required: ['cpuMillis', 'memoryMb', 'diskMb'],
      additionalProperties: true,
      properties: { cpuMillis: positive, memoryMb: positive, diskMb: positive },
    },
    desired: { type: 'string', enum: desiredReplicaStates },
    role: optional({ type: 'string', enum: replicaRoles }),
    epoch: optional(epoch),
    upstream: optional({
      type: 'object',
      required: ['host', 'port'],
      additionalProperties: true,
      properties: {
        host: { type: 'string', pattern: hostPattern },
        port: { type: 'integer', minimum: 1, maximum: 65535 },
      },
    }),
    io: optional(ioPolicySchema),
    generation: optional(epoch),
    seed: optional(seedSchema),
    keepVolume: optional(flag),
    movedTo: optional(keySegment),
    image: optional({ type: 'string', pattern: imageReferencePattern }),
  },
};

/** The rules of an assignment a schema cannot say. */
function assignmentProblems(key: string, record: AssignmentRecord): string[] {
  const problems: string[] = [];
  const [instanceId, ordinalText] = keyTail(key, 2);
  if (record.instanceId !== instanceId) problems.push(`/instanceId does not match its key (${instanceId})`);
  if (String(record.ordinal) !== ordinalText) problems.push(`/ordinal does not match its key (${ordinalText})`);
  if (record.role === 'primary' && record.epoch === undefined) {
    problems.push('/epoch is required for a primary (0 to bootstrap)');
  }
  if (record.seed && parseServedVolume(record.seed.from.volume) === undefined) {
    problems.push('/seed/from/volume must be replica.<id>.<n> or backup.<id>.<backup>');
  }
  return problems;
}

export const placementCodec = defineRecord<PlacementRecord>({ name: 'placement', schema: placementSchema });
export const assignmentCodec = defineRecord<AssignmentRecord>({
  name: 'assignment',
  schema: assignmentSchema,
  check: assignmentProblems,
});
