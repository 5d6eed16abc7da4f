import { ErrorCodes, SfError } from '@service-foundry/core';

/**
 * A device's `agent` is not something the fencing runner will execute: not a `fence_*`
 * name, not in an allow-listed directory, or a file anyone but root (or this user) could
 * have written. Raised before anything runs; the operator API answers it as a 400, the
 * runner as the device's failure.
 */
export class FenceAgentRefusedError extends SfError {
  /** The `agent` as configured. */
  readonly agent: string;
  /** Why, for the operator (no secrets: agent names and paths only). */
  readonly reason: string;
  constructor(agent: string, reason: string) {
    super(ErrorCodes.invalidInput, `fence agent ${JSON.stringify(agent.slice(0, 300))} refused: ${reason}`);
    this.agent = agent;
    this.reason = reason;
  }
}

/**
 * An allow-listed agent did not describe itself: `action=metadata` failed, timed out, or
 * printed something that is not ClusterLabs resource-agent XML. Its options cannot be
 * checked, so it is not run.
 */
export class FenceAgentMetadataError extends SfError {
  /** The agent's real path. */
  readonly path: string;
  readonly reason: string;
  constructor(path: string, reason: string) {
    super(ErrorCodes.process, `fence agent ${path} gave no usable metadata (action=metadata): ${reason}`);
    this.path = path;
    this.reason = reason;
  }
}

/**
 * A node the cluster has never heard of: no node record, allocation ledger, fence record
 * or fence devices. Fencing it, or configuring devices for it, is refused so that nothing
 * is written for a name an operator mistyped (or an attacker made up).
 */
export class UnknownNodeError extends SfError {
  readonly node: string;
  constructor(node: string) {
    super(
      ErrorCodes.notFound,
      `node ${node} is not known to this cluster (no node record, allocation ledger, fence record or fence devices)`,
    );
    this.node = node;
  }
}
