import type { AssignmentRecord, Etcd3, Keyspace, Logger } from '@service-foundry/core';
import type { AppliedReplicas } from './applied-replicas.js';
import type { NodeIdentity, ReplicaRef } from './container-spec.js';
import type { ContainerState, DockerRuntime } from './docker-runtime.js';
import { checkPrimaryClaim } from './primary-guard.js';
import type { StatusWriter } from './status-writer.js';

/** A standby that was a primary stops gracefully: its data is about to be replaced anyway. */
const standbyStopTimeoutSeconds = 10;

export interface ShippedReconcilerDeps {
  client: Etcd3;
  keys: Keyspace;
  docker: DockerRuntime;
  statuses: StatusWriter;
  identity: NodeIdentity;
  log: Logger;
  applied: AppliedReplicas;
  selfFenced: () => boolean;
  retryLater: (ref: ReplicaRef, ms: number) => void;
}

export type ShippedVerdict = 'run' | 'done';

/**
 * Replicas of a volume-shipping plan (catalog `volumeShipping`): the service's native
 * replication is not used; one replica serves, the others are cold copies of its volume
 * (assignments with a periodic `seed`, handled by the seeder before this is reached).
 *
 * | assignment                   | container | action                                                          |
 * |------------------------------|-----------|-----------------------------------------------------------------|
 * | no role                      | —         | wait for the controller; start nothing                           |
 * | `replica` (standby), no seed | running   | stop it (a demoted primary); status `stopped`                    |
 * | `replica`, no seed           | not running | status `stopped`: waiting for a primary to copy              |
 * | `primary`                    | running   | run (the standalone path keeps it up)                            |
 * | `primary`                    | not running | only if `primary/<id>` is at the assignment's epoch and names this node (I2), and the node is not self-fenced; then run |
 *
 * A serving primary is registered with AppliedReplicas, so self-fencing (I3) kills it
 * when the node's lease runs out, as for natively replicated primaries.
 */
export class ShippedReconciler {
  constructor(private readonly deps: ShippedReconcilerDeps) {}

  async check(
    ref: ReplicaRef,
    assignment: AssignmentRecord,
    container: ContainerState | undefined,
  ): Promise<ShippedVerdict> {
    const { statuses, docker, log } = this.deps;
    if (assignment.role === undefined) {
      if (!container?.running) {
        await statuses.set(ref, { state: 'creating', message: 'waiting for the controller to choose a role' });
      }
      return 'done';
    }
    if (assignment.role === 'replica') {
      if (container?.running) {
        log.warn({ instanceId: ref.instanceId, ordinal: ref.ordinal }, 'demoted to standby: stopping the container');
        await docker.stopContainer(container.id, standbyStopTimeoutSeconds);
      }
      this.deps.applied.delete(ref);
      await statuses.set(ref, {
        state: 'stopped',
        message: 'standby: waiting for the controller to name the primary to copy',
        ...(container ? { containerId: container.id } : {}),
      });
      return 'done';
    }
    if (!container?.running) {
      const claim = await checkPrimaryClaim(
        this.deps.client,
        this.deps.keys,
        this.deps.identity.node,
        ref,
        assignment.epoch ?? 0,
        this.deps.selfFenced(),
      );
      if (!claim.ok) {
        await statuses.set(ref, {
          state: container ? 'failed' : 'creating',
          message: `not starting as primary: ${claim.reason}`,
          ...(container ? { containerId: container.id } : {}),
        });
        this.deps.retryLater(ref, 1000);
        return 'done';
      }
    }
    return 'run';
  }

  /** Makes the running primary known to self-fencing. */
  registerPrimary(ref: ReplicaRef, assignment: AssignmentRecord, containerId: string): void {
    if (this.deps.applied.of(ref, containerId)) return;
    this.deps.applied.set({
      ref,
      containerId,
      serviceName: assignment.serviceName,
      generation: 0,
      role: 'primary',
      mayBePrimary: true,
      busy: 0,
      ...(assignment.epoch !== undefined ? { epoch: assignment.epoch } : {}),
    });
  }
}
