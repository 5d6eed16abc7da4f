import type {
  AssignmentRecord,
  CatalogEntry,
  Etcd3,
  EventLog,
  Keyspace,
  Logger,
  ServiceReplicationRecipe,
  ServiceRuntime,
} from '@service-foundry/core';
import { type AppliedReplica, type AppliedReplicas, appliedStatusFields } from './applied-replicas.js';
import type { ContainerLifecycle } from './container-lifecycle.js';
import {
  containerCreateOptions,
  labelKeys,
  type NodeIdentity,
  portSpec,
  type ReplicaRef,
  replicaLabels,
  replicaResourceName,
} from './container-spec.js';
import type { ContainerState, DockerRuntime } from './docker-runtime.js';
import { checkPrimaryClaim, type PrimaryClaim } from './primary-guard.js';
import { currentReplicaVolume, replicaVolumeName } from './replica-volumes.js';
import type { ReplicationCommands } from './replication-commands.js';
import { replicationEnv } from './replication-spec.js';
import { RunningReplica } from './running-replica.js';
import type { StatusWriter } from './status-writer.js';

/** A refused or failed replication step is tried again this soon (and on every change). */
const retryMs = 1000;
/** A replica being rebuilt stops gracefully first; a possible primary is killed instead. */
const rebuildStopTimeoutSeconds = 10;

export interface ReplicatedReconcilerDeps {
  client: Etcd3;
  keys: Keyspace;
  docker: DockerRuntime;
  statuses: StatusWriter;
  identity: NodeIdentity;
  events: EventLog;
  log: Logger;
  lifecycle: ContainerLifecycle;
  applied: AppliedReplicas;
  commands: ReplicationCommands;
  /** True while the node is self-fenced (self-fence.ts): no primary starts or is promoted. */
  selfFenced: () => boolean;
  peerAddress: 'container' | 'node';
  retryLater: (ref: ReplicaRef, ms: number) => void;
}

/**
 * Runs a replica of a service with a `replication` recipe. "Applied" is what this agent
 * did or observed inside the container (applied-replicas.ts), never the last assignment.
 * Rows 4a–4d and 5 on a ready container are in running-replica.ts; self-fencing (I3) in
 * self-fence.ts; the same table, with the test of each row, in the package README.
 *
 * | # | assignment / container                                   | action                                                                |
 * |---|----------------------------------------------------------|-----------------------------------------------------------------------|
 * | 1 | `role` absent                                            | create nothing; `creating` "waiting for the controller to choose a role" |
 * | 2 | start as `primary` (new or stopped container)            | only if epoch 0 and no `primary/<id>`, or `primary/<id>` mod revision == epoch naming this replica and node, read right before `docker start`, and not self-fenced; else `creating`/`failed` "stale epoch …" and nothing else |
 * | 3 | start as `replica`                                       | needs `upstream`, else `creating` "waiting … upstream"; env role, upstream, credentials, replica name; the image clones on an empty volume |
 * | 4a| running replica, assignment `primary` at a new epoch     | check as in 2, then `promote`, then `role` must print primary; status role/epoch |
 * | 4b| running primary, same role, new epoch                    | check as in 2; status epoch (a failed check is reported, nothing is stopped) |
 * | 4c| running replica, `upstream` differs from the applied one | `follow {{host}} {{port}}`; status epoch                              |
 * | 4d| `io` differs from the applied one                        | `configure {{durability}} {{localIo}}`; status io                      |
 * | 4e| (possible) primary assigned `replica`, or `generation` above the container's | new volume (name with the generation), kill (primary) or stop (replica), remove the container, keep the old volume, event `replica-volume-superseded`, start as in 3 |
 * | 4f| any command fails or times out                           | status message with its stderr; retried after 1 s and on every pass   |
 */
export class ReplicatedReconciler {
  private readonly running: RunningReplica;

  constructor(private readonly deps: ReplicatedReconcilerDeps) {
    this.running = new RunningReplica({ ...deps, claim: (ref, assignment) => this.#claim(ref, assignment) });
  }

  async reconcile(
    ref: ReplicaRef,
    assignment: AssignmentRecord,
    entry: CatalogEntry,
    recipe: ServiceReplicationRecipe,
    container: ContainerState | undefined,
    signal: AbortSignal,
  ): Promise<void> {
    // Known first, even without a role: self-fencing must know every possible primary.
    const known = container ? await this.#known(ref, assignment, container, recipe) : undefined;
    if (assignment.role === undefined) return this.#awaitRole(ref, container);
    if (container && known) {
      const reason = this.#rebuildReason(assignment, known);
      if (!reason && container.running) return this.#converge(ref, assignment, entry, recipe, container, known, signal);
      if (!reason) return this.#restart(ref, assignment, entry, recipe, container, known, signal);
      await this.#rebuild(ref, assignment, entry.runtime, container, known, reason);
    }
    return this.#create(ref, assignment, entry, recipe, signal);
  }

  /** Rule 1. A container that runs already (the role was withdrawn) is left as it is. */
  async #awaitRole(ref: ReplicaRef, container: ContainerState | undefined): Promise<void> {
    if (container?.running) return;
    await this.deps.statuses.set(ref, {
      state: 'creating',
      message: 'waiting for the controller to choose a role',
      ...(container ? { containerId: container.id } : {}),
    });
  }

  /** What is applied in the container; adopted containers are asked for their role. */
  async #known(
    ref: ReplicaRef,
    assignment: AssignmentRecord,
    container: ContainerState,
    recipe: ServiceReplicationRecipe,
  ): Promise<AppliedReplica> {
    const { applied, commands, log } = this.deps;
    const existing = applied.of(ref, container.id);
    if (existing) return existing;
    const generation = Number(container.labels[labelKeys.generation] ?? 0);
    const known = applied.set({
      ref,
      containerId: container.id,
      serviceName: assignment.serviceName,
      generation: Number.isSafeInteger(generation) ? generation : 0,
      // Without a label the container predates replication: it ran standalone, as a primary.
      mayBePrimary: container.labels[labelKeys.role] !== 'replica',
      busy: 0,
    });
    if (container.running) {
      try {
        known.role = await commands.role(container.id, recipe);
        known.mayBePrimary = known.role === 'primary';
      } catch (error) {
        log.warn(
          { err: error, instanceId: ref.instanceId, ordinal: ref.ordinal },
          'cannot read the role of a container',
        );
      }
    }
    return known;
  }

  #rebuildReason(assignment: AssignmentRecord, known: AppliedReplica): string | undefined {
    const generation = assignment.generation ?? 0;
    if (generation > known.generation) return `generation ${known.generation} → ${generation}`;
    if (assignment.role === 'replica' && known.mayBePrimary) {
      return 'demoted: it was (or may have been) primary, so its data may have diverged from the new primary';
    }
    return undefined;
  }

  /** Rule 4e: never reuses or deletes the old volume; a new one is made first, so a crash half way is harmless. */
  async #rebuild(
    ref: ReplicaRef,
    assignment: AssignmentRecord,
    runtime: ServiceRuntime,
    container: ContainerState,
    known: AppliedReplica,
    reason: string,
  ): Promise<void> {
    const { docker, identity, events, log, statuses, applied } = this.deps;
    const generation = assignment.generation ?? 0;
    const oldVolume = container.volumeMounts[runtime.volumePath] ?? replicaResourceName(identity.node, ref);
    const rebuildEpoch = generation > known.generation ? undefined : (assignment.epoch ?? 0);
    const newVolume = replicaVolumeName(identity.node, ref, generation, rebuildEpoch);
    if (newVolume === oldVolume) {
      throw new Error(
        `cannot rebuild (${reason}): the fresh volume would be ${newVolume}, the one in use; a new generation or epoch is needed`,
      );
    }
    await statuses.set(ref, { state: 'creating', containerId: container.id, message: `rebuilding: ${reason}` });
    await docker.ensureVolume(newVolume, {
      ...replicaLabels(identity, assignment),
      [labelKeys.generation]: String(generation),
      ...(rebuildEpoch !== undefined ? { [labelKeys.rebuildEpoch]: String(rebuildEpoch) } : {}),
    });
    // A possible primary must stop writing now, not after a graceful shutdown.
    if (known.mayBePrimary) await docker.killContainer(container.id);
    else await docker.stopContainer(container.id, rebuildStopTimeoutSeconds);
    await docker.removeContainer(container.id);
    applied.delete(ref);
    const message =
      `replica ${ref.instanceId}/${ref.ordinal} on node ${identity.node} rebuilt as a replica (${reason}); ` +
      `volume ${oldVolume} is kept, superseded by ${newVolume}`;
    log.warn({ instanceId: ref.instanceId, ordinal: ref.ordinal, oldVolume, newVolume }, message);
    await events.record('replica-volume-superseded', message, { instanceId: ref.instanceId, node: identity.node });
  }

  /** Rules 2 and 3 for a replica without a container. */
  async #create(
    ref: ReplicaRef,
    assignment: AssignmentRecord,
    entry: CatalogEntry,
    recipe: ServiceReplicationRecipe,
    signal: AbortSignal,
  ): Promise<void> {
    const { docker, statuses, identity, lifecycle, applied } = this.deps;
    const role = assignment.role ?? 'replica';
    const generation = assignment.generation ?? 0;
    if (role === 'replica' && !assignment.upstream) {
      return statuses.set(ref, { state: 'creating', message: 'waiting for the controller to name the upstream' });
    }
    if (role === 'primary') {
      // Checked here too so a stale assignment creates nothing; checked again right before start.
      const claim = await this.#claim(ref, assignment);
      if (!claim.ok) return this.#refused(ref, claim.reason);
    }
    const secret = await lifecycle.prerequisites(ref, entry.runtime);
    if (!secret) return;
    const volume = await currentReplicaVolume(docker, identity, ref, generation);
    await statuses.set(ref, { state: 'creating', message: `creating volume ${volume} and a container as ${role}` });
    await docker.ensureVolume(volume, {
      ...replicaLabels(identity, assignment),
      [labelKeys.generation]: String(generation),
    });
    const id = await docker.createContainer(
      containerCreateOptions(identity, assignment, entry, secret, {
        role,
        generation,
        volume,
        env: replicationEnv(recipe, assignment, role, secret),
        ...(this.deps.peerAddress === 'node' ? { publishPort: recipe.port } : {}),
      }),
    );
    const known = applied.set({
      ref,
      containerId: id,
      serviceName: assignment.serviceName,
      generation,
      role,
      mayBePrimary: role === 'primary',
      busy: 0,
      ...(assignment.epoch !== undefined ? { epoch: assignment.epoch } : {}),
      ...(role === 'replica' && assignment.upstream ? { upstream: { ...assignment.upstream } } : {}),
    });
    return this.#startAndConverge(ref, assignment, entry, recipe, id, known, signal);
  }

  /** A stopped container: report the exit first, back off, then start it again (rule 2 for a primary). */
  async #restart(
    ref: ReplicaRef,
    assignment: AssignmentRecord,
    entry: CatalogEntry,
    recipe: ServiceReplicationRecipe,
    container: ContainerState,
    known: AppliedReplica,
    signal: AbortSignal,
  ): Promise<void> {
    const { statuses, lifecycle } = this.deps;
    const status = statuses.current(ref);
    if (status?.containerId === container.id && (status.state === 'running' || status.state === 'starting')) {
      return lifecycle.reportExit(ref, container, container.id, known.fencedReason);
    }
    if (status?.state === 'failed' && !lifecycle.backoffOver(ref, status.updatedAt)) return;
    return this.#startAndConverge(ref, assignment, entry, recipe, container.id, known, signal);
  }

  async #startAndConverge(
    ref: ReplicaRef,
    assignment: AssignmentRecord,
    entry: CatalogEntry,
    recipe: ServiceReplicationRecipe,
    containerId: string,
    known: AppliedReplica,
    signal: AbortSignal,
  ): Promise<void> {
    const { docker, lifecycle, log } = this.deps;
    if (assignment.role === 'primary') {
      // I2: the primary key, read right before the start.
      const claim = await this.#claim(ref, assignment);
      if (!claim.ok) return this.#refused(ref, claim.reason, containerId);
      known.mayBePrimary = true;
    }
    log.info({ instanceId: ref.instanceId, ordinal: ref.ordinal, role: assignment.role }, 'starting container');
    await docker.startContainer(containerId);
    if (known.mayBePrimary && this.deps.selfFenced()) {
      // Fenced between the check and the start; the fence loop would kill it too.
      await docker.killContainer(containerId);
      return this.#refused(ref, 'self-fenced while it was starting', containerId);
    }
    delete known.fencedReason;
    const ready = await lifecycle.awaitReady(ref, containerId, entry.runtime, signal, () => appliedStatusFields(known));
    if (!ready) return;
    return this.running.apply(ref, assignment, recipe, ready.container, ready.port, known);
  }

  /** A running container: readiness after adoption or a failure, then rule 4. */
  async #converge(
    ref: ReplicaRef,
    assignment: AssignmentRecord,
    entry: CatalogEntry,
    recipe: ServiceReplicationRecipe,
    container: ContainerState,
    known: AppliedReplica,
    signal: AbortSignal,
  ): Promise<void> {
    const { statuses, lifecycle } = this.deps;
    const status = statuses.current(ref);
    const own = status?.containerId === container.id;
    const port = container.publishedPorts[portSpec(entry.runtime)];
    if (own && status?.state === 'running' && port !== undefined) {
      return this.running.apply(ref, assignment, recipe, container, port, known);
    }
    if (own && status?.state === 'failed' && !lifecycle.backoffOver(ref, status.updatedAt)) return;
    const ready = await lifecycle.awaitReady(ref, container.id, entry.runtime, signal, () =>
      appliedStatusFields(known),
    );
    if (!ready) return;
    return this.running.apply(ref, assignment, recipe, ready.container, ready.port, known);
  }

  #claim(ref: ReplicaRef, assignment: AssignmentRecord): Promise<PrimaryClaim> {
    const { client, keys, identity } = this.deps;
    return checkPrimaryClaim(client, keys, identity.node, ref, assignment.epoch ?? 0, this.deps.selfFenced());
  }

  /** Rule 2 refused: say why (once in the log), start nothing, look again soon. */
  async #refused(ref: ReplicaRef, reason: string, containerId?: string): Promise<void> {
    const { statuses, log } = this.deps;
    const message = `not starting as primary: ${reason}`;
    if (statuses.current(ref)?.message !== message) {
      log.warn({ instanceId: ref.instanceId, ordinal: ref.ordinal }, message);
    }
    await statuses.set(ref, {
      state: containerId ? 'failed' : 'creating',
      message,
      ...(containerId ? { containerId } : {}),
    });
    this.deps.retryLater(ref, retryMs);
  }
}
