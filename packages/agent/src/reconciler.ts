import {
  type AssignmentRecord,
  type Catalog,
  type Etcd3,
  type EventLog,
  type Keyspace,
  type Logger,
  readJson,
  type ServiceRuntime,
  type Versioned,
} from '@service-foundry/core';
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
import { lastLines } from './docker-streams.js';
import { awaitReadiness } from './readiness.js';
import { assignmentProblems, isAssignment, isInstanceSecret } from './records.js';
import type { StatusWriter } from './status-writer.js';

/** Graceful stop before Docker kills: enough for a database to checkpoint. */
const stopTimeoutSeconds = 30;
const logLinesInMessages = 10;
const secretRetryMs = 1000;

function describeLogs(logs: string): string {
  return logs ? `last log lines:\n${logs}` : 'the container wrote no log output';
}

export interface ReconcilerDeps {
  client: Etcd3;
  keys: Keyspace;
  docker: DockerRuntime;
  catalog: Catalog;
  statuses: StatusWriter;
  identity: NodeIdentity;
  events: EventLog;
  log: Logger;
  /** A failed replica is restarted no sooner than half this after its failure. */
  reconcileIntervalMs: number;
  /** The assignment of a replica as last seen by the watch. */
  assignmentOf: (ref: ReplicaRef) => Versioned<unknown> | undefined;
  /** Asks for another reconcile of the replica later (waiting for a secret, backing off). */
  retryLater: (ref: ReplicaRef, ms: number) => void;
}

/**
 * Brings one replica's container in line with its assignment. Called for one replica at
 * a time (ReplicaQueue), reading the latest assignment and the container's real state on
 * every call, so any call is safe to repeat and a restarted agent adopts what it finds.
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
    if (value.desired === 'removed') return this.#remove(ref, assignment, container);
    try {
      await this.#ensureRunning(ref, value, container, signal);
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

  async #ensureRunning(
    ref: ReplicaRef,
    assignment: AssignmentRecord,
    container: ContainerState | undefined,
    signal: AbortSignal,
  ): Promise<void> {
    const { docker, statuses, identity } = this.deps;
    const entry = this.deps.catalog.byServiceName(assignment.serviceName);
    if (!entry) {
      return statuses.set(ref, { state: 'failed', message: `service ${assignment.serviceName} is not in the catalog` });
    }
    const runtime = entry.runtime;
    const status = statuses.current(ref);
    const ownStatus = status?.containerId !== undefined && status.containerId === container?.id;
    if (container?.running) {
      if (ownStatus && status?.state === 'running') return;
      // Adopted after an agent restart, or a readiness timeout worth another try.
      if (ownStatus && status?.state === 'failed' && !this.#backoffOver(ref, status.updatedAt)) return;
      return this.#awaitReady(ref, container.id, runtime, signal);
    }
    if (container) {
      if (ownStatus && (status?.state === 'running' || status?.state === 'starting')) {
        // Report the crash first; a later pass restarts it, so the failure is visible.
        return this.#reportExit(ref, container);
      }
      if (status?.state === 'failed' && !this.#backoffOver(ref, status.updatedAt)) return;
      this.deps.log.info({ instanceId: ref.instanceId, ordinal: ref.ordinal }, 'starting existing container');
      await docker.startContainer(container.id);
      return this.#awaitReady(ref, container.id, runtime, signal);
    }
    if (!(await docker.hasImage(runtime.image))) {
      return statuses.set(ref, {
        state: 'failed',
        message: `image ${runtime.image} not found: run \`sf images build\``,
      });
    }
    const secret = await readJson<unknown>(this.deps.client, this.deps.keys.secret(ref.instanceId));
    if (!secret || !isInstanceSecret(secret.value)) {
      await statuses.set(ref, {
        state: 'creating',
        message: secret
          ? 'the instance secret is malformed; waiting for a valid one'
          : 'waiting for the instance secret',
      });
      return this.deps.retryLater(ref, secretRetryMs);
    }
    await statuses.set(ref, { state: 'creating', message: 'creating volume and container' });
    const name = replicaResourceName(identity.node, ref);
    await docker.ensureVolume(name, replicaLabels(identity, assignment));
    const id = await docker.createContainer(containerCreateOptions(identity, assignment, runtime, secret.value));
    await docker.startContainer(id);
    return this.#awaitReady(ref, id, runtime, signal);
  }

  #backoffOver(ref: ReplicaRef, failedAt: string): boolean {
    const waitMs = this.deps.reconcileIntervalMs / 2 - (Date.now() - Date.parse(failedAt));
    if (waitMs <= 0) return true;
    this.deps.retryLater(ref, waitMs);
    return false;
  }

  async #awaitReady(ref: ReplicaRef, containerId: string, runtime: ServiceRuntime, signal: AbortSignal): Promise<void> {
    const { docker, statuses, identity } = this.deps;
    const state = await docker.inspectContainer(containerId);
    if (!state?.running) return this.#reportExit(ref, state ?? undefined, containerId);
    const port = state.publishedPorts[portSpec(runtime)];
    if (port === undefined) {
      return statuses.set(ref, { state: 'failed', containerId, message: `port ${portSpec(runtime)} is not published` });
    }
    await statuses.set(ref, { state: 'starting', containerId, message: 'waiting for the readiness check' });
    const outcome = await awaitReadiness(docker, containerId, runtime.readiness, signal);
    if (outcome.kind === 'ready') {
      await statuses.set(ref, { state: 'running', containerId, host: identity.address, port, message: 'ready' });
    } else if (outcome.kind === 'exited') {
      await this.#reportExit(ref, await docker.inspectContainer(containerId), containerId);
    } else {
      const logs = await this.#logs(containerId);
      const output = lastLines(outcome.lastOutput, 3);
      await statuses.set(ref, {
        state: 'failed',
        containerId,
        message:
          `not ready after ${runtime.readiness.timeoutSeconds} s: readiness command exited with code ` +
          `${outcome.lastExitCode ?? 'none (still running)'}${output ? ` (${output})` : ''}; ${describeLogs(logs)}`,
      });
    }
  }

  async #reportExit(
    ref: ReplicaRef,
    container: ContainerState | undefined,
    containerId = container?.id,
  ): Promise<void> {
    const exitCode = container?.exitCode ?? 'unknown';
    const oom = container?.oomKilled ? ' (killed: out of memory)' : '';
    const logs = containerId ? await this.#logs(containerId) : '';
    const { log, statuses, events, identity } = this.deps;
    log.warn({ instanceId: ref.instanceId, ordinal: ref.ordinal, exitCode }, 'replica container exited');
    const message = `container exited with code ${exitCode}${oom}; ${describeLogs(logs)}`;
    await statuses.set(ref, { state: 'failed', ...(containerId ? { containerId } : {}), message });
    await events.record('replica-failed', `replica ${ref.instanceId}/${ref.ordinal}: ${message}`, {
      instanceId: ref.instanceId,
      node: identity.node,
    });
  }

  async #logs(containerId: string): Promise<string> {
    try {
      return lastLines(await this.deps.docker.logsTail(containerId, logLinesInMessages), logLinesInMessages);
    } catch (error) {
      return `(logs unavailable: ${(error as Error).message})`;
    }
  }

  /** Desired `removed`: the replica's data goes with it, then the controller learns the capacity is free. */
  async #remove(ref: ReplicaRef, assignment: Versioned<unknown>, container: ContainerState | undefined): Promise<void> {
    const { docker, statuses, identity, client, keys, log } = this.deps;
    await statuses.set(ref, {
      state: 'removing',
      message: 'stopping and removing the container and its volume',
      ...(container ? { containerId: container.id } : {}),
    });
    try {
      if (container) {
        await docker.stopContainer(container.id, stopTimeoutSeconds);
        await docker.removeContainer(container.id);
      }
      await docker.removeVolume(replicaResourceName(identity.node, ref));
    } catch (error) {
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

  /** No assignment: stop a running container but keep its volume — data is never lost by accident. */
  async #unassigned(ref: ReplicaRef, container: ContainerState | undefined): Promise<void> {
    const { docker, statuses, events, log, identity } = this.deps;
    if (container?.running) {
      const message = `container ${container.name} has no assignment on node ${identity.node}: stopped it, kept its volume`;
      log.warn({ instanceId: ref.instanceId, ordinal: ref.ordinal, container: container.id }, message);
      await docker.stopContainer(container.id, stopTimeoutSeconds);
      await events.record('orphan-container-stopped', message, { instanceId: ref.instanceId, node: identity.node });
    }
    if (statuses.current(ref)) await statuses.remove(ref);
  }
}
