import {
  type AssignmentRecord,
  type Etcd3,
  type EventLog,
  type Keyspace,
  type Logger,
  replicaId,
  type Versioned,
} from '@service-foundry/core';
import type { AppliedReplicas } from './applied-replicas.js';
import { type NodeIdentity, type ReplicaRef, replicaResourceName } from './container-spec.js';
import type { ContainerState, DockerRuntime } from './docker-runtime.js';
import { ContainerStillRunningError } from './errors.js';
import { watchProcess } from './process-exit.js';
import { currentReplicaVolume } from './replica-volumes.js';
import type { StatusWriter } from './status-writer.js';

/** Graceful stop before Docker kills: enough for a database to checkpoint. */
const stopTimeoutSeconds = 30;

export interface ReplicaTeardownDeps {
  client: Etcd3;
  keys: Keyspace;
  docker: DockerRuntime;
  statuses: StatusWriter;
  identity: NodeIdentity;
  events: EventLog;
  log: Logger;
  applied: AppliedReplicas;
  /** Told of an assignment this agent deleted, so no pass acts on a stale copy of it. */
  assignmentDeleted?: (ref: ReplicaRef, modRevision: string) => void;
}

/**
 * Replicas that stop running here: desired `stopped` (a relocation's final copy), desired
 * `removed`, and containers left without an assignment. Data is removed only when the
 * assignment says `removed`, never by accident.
 */
export class ReplicaTeardown {
  /**
   * The volume a removal deleted, by replica, with the assignment version it removed. The
   * same removal run again (it failed afterwards on etcd, or a pass read a stale copy of the
   * deleted assignment) finds no container and no volume in use: it must not take the
   * newest superseded volume for the one in use.
   */
  readonly #volumeRemoved = new Map<string, { volume: string; modRevision: string }>();

  constructor(private readonly deps: ReplicaTeardownDeps) {}

  /**
   * Desired `stopped` (a relocation's source during its final copy, a switchover's old
   * primary): a graceful stop, so the service flushes everything to its volume, which is
   * kept. Nothing restarts it until the assignment says `running` again.
   */
  async stop(
    ref: ReplicaRef,
    container: ContainerState | undefined,
    moved: boolean,
    flush?: readonly string[],
  ): Promise<void> {
    const { docker, statuses, events, identity, log } = this.deps;
    if (container?.running && flush) {
      // The catalog's flush (Postgres: CHECKPOINT) while the service still serves: the
      // shutdown then has little left to write, and the stop — the pause clients see in a
      // switchover or a relocation — is short. A failed flush only makes the stop longer.
      const flushed = await docker
        .exec(container.id, [...flush], stopTimeoutSeconds * 1000)
        .catch((error: unknown) => ({
          exitCode: null,
          stderr: (error as Error).message,
        }));
      if (flushed.exitCode !== 0) {
        log.warn(
          { instanceId: ref.instanceId, ordinal: ref.ordinal, stderr: flushed.stderr },
          'flush before stop failed',
        );
      }
    }
    const stoppedStatus = {
      state: 'stopped',
      message: 'stopped; the volume is kept',
      ...(container ? { containerId: container.id } : {}),
    } as const;
    if (container?.running) {
      // `stopped` is written only once the container's process exited: the controller copies
      // the final delta, or promotes a switchover's target, as soon as it reads it. /proc
      // says so before Docker does (process-exit.ts).
      const watch = container.pid && !moved ? await watchProcess(container.pid) : undefined;
      const stopping = docker.stopContainer(container.id, stopTimeoutSeconds);
      if (await watch?.exited(stopping)) await statuses.set(ref, stoppedStatus);
      await stopping;
      log.info({ instanceId: ref.instanceId, ordinal: ref.ordinal }, 'replica stopped; its volume is kept');
      await events.record('replica-stopped', `replica ${ref.ordinal} stopped on ${identity.node}; its volume is kept`, {
        instanceId: ref.instanceId,
        node: identity.node,
      });
    }
    const after = container ? await docker.inspectContainer(container.id) : undefined;
    if (after?.running) throw new ContainerStillRunningError(after.name);
    // Kept after a relocation switched away from here: the replica's status is the new node's.
    if (moved) {
      statuses.forget(ref);
      return;
    }
    await statuses.set(ref, stoppedStatus);
  }

  /**
   * Desired `removed`: the replica's data goes with it, then the controller learns the
   * capacity is free. `replicated`: volumes are named by generation (replica-volumes.ts).
   */
  async remove(
    ref: ReplicaRef,
    assignment: Versioned<AssignmentRecord>,
    container: ContainerState | undefined,
    replicated: boolean,
  ): Promise<void> {
    const { docker, statuses, identity, client, keys, log, applied } = this.deps;
    // A replica that moved has its status written by its new node: stay silent.
    const moved = assignment.value.movedTo !== undefined;
    if (moved) statuses.forget(ref);
    if (!moved) {
      await statuses.set(ref, {
        state: 'removing',
        message: 'stopping and removing the container and its volume',
        ...(container ? { containerId: container.id } : {}),
      });
    }
    const removal = replicaId(ref.instanceId, ref.ordinal);
    try {
      let volume = replicaResourceName(identity.node, ref);
      if (replicated) {
        // The volume in use; volumes superseded by rebuilds stay for an operator.
        volume = await currentReplicaVolume(docker, identity, ref, assignment.value.generation ?? 0);
      }
      if (container) {
        volume = Object.values(container.volumeMounts)[0] ?? volume;
        await docker.stopContainer(container.id, stopTimeoutSeconds);
        await docker.removeContainer(container.id);
      }
      applied.delete(ref);
      const removedBefore = this.#volumeRemoved.get(removal);
      if (removedBefore?.modRevision === assignment.modRevision && !container) {
        log.info(
          { instanceId: ref.instanceId, ordinal: ref.ordinal, volume: removedBefore.volume },
          'volume already removed',
        );
      } else if (assignment.value.keepVolume) {
        await this.deps.events.record(
          'replica-volume-kept',
          `replica ${ref.ordinal} removed from ${identity.node}; its volume ${volume} is kept as a standby copy`,
          { instanceId: ref.instanceId, node: identity.node },
        );
      } else {
        await docker.removeVolume(volume);
        this.#volumeRemoved.set(removal, { volume, modRevision: assignment.modRevision });
      }
    } catch (error) {
      if (moved) throw error;
      // Stay in `removing`, say why; the next pass tries again.
      await statuses.set(ref, {
        state: 'removing',
        message: `removal failed, will retry: ${(error as Error).message}`,
        ...(container ? { containerId: container.id } : {}),
      });
      throw error;
    }
    await statuses.remove(ref);
    const key = keys.assignment(identity.node, ref.instanceId, ref.ordinal);
    const res = await client.if(key, 'Mod', '==', assignment.modRevision).then(client.delete().key(key)).commit();
    if (res.succeeded) {
      this.deps.assignmentDeleted?.(ref, assignment.modRevision);
      log.info({ instanceId: ref.instanceId, ordinal: ref.ordinal }, 'replica removed');
    } else log.info({ key }, 'assignment changed during removal; reconciling its new version');
  }

  /** No assignment: stop a running container but keep its volume — data is never lost by accident. */
  async unassigned(ref: ReplicaRef, container: ContainerState | undefined): Promise<void> {
    const { docker, statuses, events, log, identity, applied } = this.deps;
    if (container?.running) {
      const message = `container ${container.name} has no assignment on node ${identity.node}: stopped it, kept its volume`;
      log.warn({ instanceId: ref.instanceId, ordinal: ref.ordinal, container: container.id }, message);
      await docker.stopContainer(container.id, stopTimeoutSeconds);
      await events.record('orphan-container-stopped', message, { instanceId: ref.instanceId, node: identity.node });
    }
    // A stopped container stays known (a primary stays one until it is rebuilt).
    if (!container) applied.delete(ref);
    this.#volumeRemoved.delete(replicaId(ref.instanceId, ref.ordinal));
    if (statuses.current(ref)) await statuses.remove(ref);
  }
}
