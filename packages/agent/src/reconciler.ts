import type {
  AssignmentRecord,
  Catalog,
  CatalogEntry,
  Etcd3,
  EventLog,
  Keyspace,
  Logger,
  Versioned,
} from '@service-foundry/core';
import type { AppliedReplicas } from './applied-replicas.js';
import type { ContainerLifecycle } from './container-lifecycle.js';
import {
  containerCreateOptions,
  labelKeys,
  type NodeIdentity,
  type ReplicaRef,
  replicaLabels,
  replicaResourceName,
} from './container-spec.js';
import type { ContainerState, DockerRuntime } from './docker-runtime.js';
import { assignmentProblems, isAssignment } from './records.js';
import { currentReplicaVolume } from './replica-volumes.js';
import type { ReplicatedReconciler } from './replicated-reconciler.js';
import type { Seeder } from './seeder.js';
import type { ShippedReconciler } from './shipped-reconciler.js';
import type { StatusWriter } from './status-writer.js';

/** Graceful stop before Docker kills: enough for a database to checkpoint. */
const stopTimeoutSeconds = 30;

export interface ReconcilerDeps {
  client: Etcd3;
  keys: Keyspace;
  docker: DockerRuntime;
  catalog: Catalog;
  statuses: StatusWriter;
  identity: NodeIdentity;
  events: EventLog;
  log: Logger;
  lifecycle: ContainerLifecycle;
  replicated: ReplicatedReconciler;
  applied: AppliedReplicas;
  seeder: Seeder;
  shipped: ShippedReconciler;
  /** The assignment of a replica as last seen by the watch. */
  assignmentOf: (ref: ReplicaRef) => Versioned<unknown> | undefined;
}

/**
 * Brings one replica's container in line with its assignment. Called for one replica at
 * a time (ReplicaQueue), reading the latest assignment and the container's real state on
 * every call, so any call is safe to repeat and a restarted agent adopts what it finds.
 * Services with a `replication` recipe go through ReplicatedReconciler (roles, epochs,
 * rebuilds); the others run as a standalone server, as before replication existed.
 */
export class Reconciler {
  constructor(private readonly deps: ReconcilerDeps) {}

  async reconcile(ref: ReplicaRef, signal: AbortSignal): Promise<void> {
    const { docker, identity, statuses } = this.deps;
    const name = replicaResourceName(identity.node, ref);
    const found = await docker.inspectContainer(name);
    const container = found && this.#isOurs(found) ? found : undefined;
    const assignment = this.deps.assignmentOf(ref);
    if (!assignment) return this.#unassigned(ref, container);
    if (found && !container) {
      const owner = `${found.labels[labelKeys.cluster]}/${found.labels[labelKeys.node]}`;
      return statuses.set(ref, { state: 'failed', message: `container name ${name} is taken by ${owner}` });
    }
    const value = assignment.value;
    if (!isAssignment(ref, value)) {
      const problems = assignmentProblems(ref, value).join('; ');
      return statuses.set(ref, { state: 'failed', message: `invalid assignment: ${problems}` });
    }
    if (value.desired !== 'running' || !value.seed) await this.deps.seeder.forget(ref);
    if (value.desired === 'removed') return this.#remove(ref, assignment, container);
    if (value.desired === 'stopped') return this.#stop(ref, container, value.movedTo !== undefined);
    try {
      const entry = this.deps.catalog.byServiceName(value.serviceName);
      if (!entry) {
        return statuses.set(ref, { state: 'failed', message: `service ${value.serviceName} is not in the catalog` });
      }
      // Seeding: the volume is being filled from another node; nothing runs here yet, and the
      // replica's status belongs to whichever node runs it.
      if (value.seed) {
        // A standby of volume shipping may have reported a status as a primary before.
        if (statuses.current(ref)) await statuses.remove(ref);
        return this.deps.seeder.seed(ref, { ...value, seed: value.seed }, entry, container, signal);
      }
      const mode = this.deps.catalog.replicationMode(value.serviceName, value.planName);
      if (mode === 'native' && entry.replication) {
        await this.deps.replicated.reconcile(ref, value, entry, entry.replication, container, signal);
      } else if (mode === 'volume-shipping') {
        if ((await this.deps.shipped.check(ref, value, container)) === 'done') return;
        const id = await this.#ensureStandalone(ref, value, entry, container, signal);
        if (id) this.deps.shipped.registerPrimary(ref, value, id);
      } else {
        await this.#ensureStandalone(ref, value, entry, container, signal);
      }
    } catch (error) {
      if (signal.aborted) return;
      await statuses.set(ref, {
        state: 'failed',
        message: (error as Error).message,
        ...(container ? { containerId: container.id } : {}),
      });
    }
  }

  #isOurs(container: ContainerState): boolean {
    const { clusterId, node } = this.deps.identity;
    return container.labels[labelKeys.cluster] === clusterId && container.labels[labelKeys.node] === node;
  }

  /**
   * A service without a replication recipe (or a volume-shipping primary): one server, no
   * epochs. Resolves to the container's id once it runs.
   */
  async #ensureStandalone(
    ref: ReplicaRef,
    assignment: AssignmentRecord,
    entry: CatalogEntry,
    container: ContainerState | undefined,
    signal: AbortSignal,
  ): Promise<string | undefined> {
    const { docker, statuses, identity, lifecycle } = this.deps;
    const runtime = entry.runtime;
    const status = statuses.current(ref);
    const ownStatus = status?.containerId !== undefined && status.containerId === container?.id;
    let id: string;
    if (container?.running) {
      if (ownStatus && status?.state === 'running') return container.id;
      // Adopted after an agent restart, or a readiness timeout worth another try.
      if (ownStatus && status?.state === 'failed' && !lifecycle.backoffOver(ref, status.updatedAt)) return undefined;
      id = container.id;
    } else if (container) {
      if (ownStatus && (status?.state === 'running' || status?.state === 'starting')) {
        // Report the crash first; a later pass restarts it, so the failure is visible.
        await lifecycle.reportExit(ref, container);
        return undefined;
      }
      if (status?.state === 'failed' && !lifecycle.backoffOver(ref, status.updatedAt)) return undefined;
      this.deps.log.info({ instanceId: ref.instanceId, ordinal: ref.ordinal }, 'starting existing container');
      await docker.startContainer(container.id);
      id = container.id;
    } else {
      const secret = await lifecycle.prerequisites(ref, runtime);
      if (!secret) return undefined;
      await statuses.set(ref, { state: 'creating', message: 'creating volume and container' });
      await docker.ensureVolume(replicaResourceName(identity.node, ref), replicaLabels(identity, assignment));
      id = await docker.createContainer(containerCreateOptions(identity, assignment, entry, secret));
      await docker.startContainer(id);
    }
    const ready = await lifecycle.awaitReady(ref, id, runtime, signal);
    if (!ready) return undefined;
    await statuses.set(ref, {
      state: 'running',
      containerId: id,
      host: identity.address,
      port: ready.port,
      message: 'ready',
    });
    return id;
  }

  /**
   * Desired `stopped` (a relocation's source during its final copy): a graceful stop, so
   * the service flushes everything to its volume, which is kept. Nothing restarts it until
   * the assignment says `running` again.
   */
  async #stop(ref: ReplicaRef, container: ContainerState | undefined, moved: boolean): Promise<void> {
    const { docker, statuses, events, identity, log } = this.deps;
    if (container?.running) {
      // `stopped` is written only once Docker says the container exited: the controller
      // copies the final delta as soon as it reads it.
      await docker.stopContainer(container.id, stopTimeoutSeconds);
      log.info({ instanceId: ref.instanceId, ordinal: ref.ordinal }, 'replica stopped for relocation');
      await events.record('replica-stopped', `replica ${ref.ordinal} stopped on ${identity.node}; its volume is kept`, {
        instanceId: ref.instanceId,
        node: identity.node,
      });
    }
    const after = container ? await docker.inspectContainer(container.id) : undefined;
    if (after?.running) throw new Error(`container ${after.name} still runs after a stop`);
    // Kept after a relocation switched away from here: the replica's status is the new node's.
    if (moved) return;
    await statuses.set(ref, {
      state: 'stopped',
      message: 'stopped; the volume is kept',
      ...(container ? { containerId: container.id } : {}),
    });
  }

  /** Desired `removed`: the replica's data goes with it, then the controller learns the capacity is free. */
  async #remove(ref: ReplicaRef, assignment: Versioned<unknown>, container: ContainerState | undefined): Promise<void> {
    const { docker, statuses, identity, client, keys, log, applied } = this.deps;
    // A replica that moved has its status written by its new node: stay silent.
    const moved = typeof (assignment.value as AssignmentRecord).movedTo === 'string';
    if (!moved) {
      await statuses.set(ref, {
        state: 'removing',
        message: 'stopping and removing the container and its volume',
        ...(container ? { containerId: container.id } : {}),
      });
    }
    try {
      let volume = replicaResourceName(identity.node, ref);
      if (this.#isReplicated(assignment.value)) {
        // The volume in use; volumes superseded by rebuilds stay for an operator (see replica-volumes.ts).
        const generation = (assignment.value as AssignmentRecord).generation ?? 0;
        volume = await currentReplicaVolume(docker, identity, ref, generation);
      }
      if (container) {
        volume = Object.values(container.volumeMounts)[0] ?? volume;
        await docker.stopContainer(container.id, stopTimeoutSeconds);
        await docker.removeContainer(container.id);
      }
      applied.delete(ref);
      if ((assignment.value as AssignmentRecord).keepVolume) {
        await this.deps.events.record(
          'replica-volume-kept',
          `replica ${ref.ordinal} removed from ${identity.node}; its volume ${volume} is kept as a standby copy`,
          { instanceId: ref.instanceId, node: identity.node },
        );
      } else {
        await docker.removeVolume(volume);
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
    if (res.succeeded) log.info({ instanceId: ref.instanceId, ordinal: ref.ordinal }, 'replica removed');
    else log.info({ key }, 'assignment changed during removal; reconciling its new version');
  }

  #isReplicated(value: unknown): boolean {
    const serviceName = (value as { serviceName?: unknown }).serviceName;
    return typeof serviceName === 'string' && this.deps.catalog.byServiceName(serviceName)?.replication !== undefined;
  }

  /** No assignment: stop a running container but keep its volume — data is never lost by accident. */
  async #unassigned(ref: ReplicaRef, container: ContainerState | undefined): Promise<void> {
    const { docker, statuses, events, log, identity, applied } = this.deps;
    await this.deps.seeder.forget(ref);
    if (container?.running) {
      const message = `container ${container.name} has no assignment on node ${identity.node}: stopped it, kept its volume`;
      log.warn({ instanceId: ref.instanceId, ordinal: ref.ordinal, container: container.id }, message);
      await docker.stopContainer(container.id, stopTimeoutSeconds);
      await events.record('orphan-container-stopped', message, { instanceId: ref.instanceId, node: identity.node });
    }
    // A stopped container stays known (a primary stays one until it is rebuilt).
    if (!container) applied.delete(ref);
    if (statuses.current(ref)) await statuses.remove(ref);
  }
}
