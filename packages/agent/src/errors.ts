import { ErrorCodes, SfError } from '@service-foundry/core';

/**
 * The agent's errors. Most end up as a replica's status message or a transfer record, so
 * each message says what failed where; the classes carry the same facts for code.
 */

/** A command of the catalog's replication recipe failed, timed out or printed nonsense; never the container's env. */
export class ReplicationCommandError extends SfError {
  /** Which command: `promote`, `follow`, `configure`, `role` or `position`. */
  readonly command: string;
  constructor(command: string, message: string, options?: ErrorOptions) {
    super(ErrorCodes.process, message, options);
    this.command = command;
  }
}

/** A command session (command-session.ts) ended or closed before it answered. */
export class CommandSessionError extends SfError {
  /** The session's program and container. */
  readonly where: string;
  constructor(where: string, reason: string) {
    super(ErrorCodes.process, `command session ${where}: ${reason}`);
    this.where = where;
  }
}

/** A stop returned, yet Docker still reports the container running. */
export class ContainerStillRunningError extends SfError {
  readonly container: string;
  constructor(container: string) {
    super(ErrorCodes.docker, `container ${container} still runs after a stop`);
    this.container = container;
  }
}

/** The node lease is asked for before the node was registered. */
export class NotRegisteredError extends SfError {
  constructor() {
    super(ErrorCodes.etcd, 'node is not registered');
  }
}

/** The agent could not register its node in etcd at start. */
export class NodeRegistrationError extends SfError {
  readonly node: string;
  readonly endpoints: readonly string[];
  constructor(node: string, endpoints: readonly string[], cause: unknown) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super(ErrorCodes.etcd, `cannot register node ${node} in etcd at ${endpoints.join(', ')}: ${reason}`, { cause });
    this.node = node;
    this.endpoints = endpoints;
  }
}

/** The node's volume server could not listen (port taken, address not on this host, …). */
export class VolumeServerStartError extends SfError {
  readonly node: string;
  constructor(node: string, cause: unknown) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super(ErrorCodes.process, `cannot start the volume server of node ${node}: ${reason}`, { cause });
    this.node = node;
  }
}

/** A seed asks this node to receive a volume, but its config has no `volumes`. */
export class NoVolumeServerError extends SfError {
  readonly node: string;
  constructor(node: string) {
    super(ErrorCodes.invalidConfig, `node ${node} has no volume server configured (agent config "volumes")`);
    this.node = node;
  }
}

/** A seed would copy over the volume of a replica that runs on this node. */
export class SeedOverRunningReplicaError extends SfError {
  readonly ordinal: number;
  constructor(ordinal: number) {
    super(ErrorCodes.conflict, `replica ${ordinal} runs on this node; refusing to copy over the volume it uses`);
    this.ordinal = ordinal;
  }
}

/** The node a seed copies from is gone or serves no volumes. */
export class SourceNodeUnavailableError extends SfError {
  readonly node: string;
  constructor(node: string, reason: 'not alive' | 'serves no volumes') {
    super(ErrorCodes.notFound, `source node ${node} ${reason === 'not alive' ? 'is not alive' : 'serves no volumes'}`);
    this.node = node;
  }
}

/** etcd did not confirm the delete of a replica's status key (the write is retried later). */
export class StatusDeleteError extends SfError {
  readonly replica: string;
  constructor(replica: string) {
    super(ErrorCodes.etcd, `could not delete the status of ${replica}`);
    this.replica = replica;
  }
}
