import {
  BadRecordError,
  type Etcd3,
  type EventLog,
  type InstanceSecret,
  type Keyspace,
  type Logger,
  readSealed,
  type SecretBox,
  SecretBoxError,
  type ServiceRuntime,
  secretCodec,
} from '@service-foundry/core';
import { type NodeIdentity, portSpec, type ReplicaRef } from './container-spec.js';
import type { ContainerState, DockerRuntime } from './docker-runtime.js';
import { lastLines } from './docker-streams.js';
import { awaitReadiness, type WireCheck } from './readiness.js';
import type { StatusUpdate, StatusWriter } from './status-writer.js';
import { probeWire } from './wire-probe.js';

const logLinesInMessages = 10;

function describeLogs(logs: string): string {
  return logs ? `last log lines:\n${logs}` : 'the container wrote no log output';
}

export interface ContainerLifecycleDeps {
  client: Etcd3;
  keys: Keyspace;
  /** Opens the instance secrets, sealed in etcd. */
  secrets: SecretBox;
  docker: DockerRuntime;
  statuses: StatusWriter;
  identity: NodeIdentity;
  events: EventLog;
  log: Logger;
}

/**
 * What every replica container goes through, standalone or replicated, and that takes more
 * than one Docker call: its secret, its readiness wait and the report of its exit.
 */
export class ContainerLifecycle {
  constructor(private readonly deps: ContainerLifecycleDeps) {}

  /**
   * The instance secret: `missing` while the broker has not written it, `invalid` when it is
   * malformed or sealed with another key (logged: an operator must look).
   */
  async readSecret(ref: ReplicaRef): Promise<InstanceSecret | 'missing' | 'invalid'> {
    const key = this.deps.keys.secret(ref.instanceId);
    try {
      const secret = await readSealed(this.deps.client, this.deps.secrets, secretCodec, key);
      return secret ? secret.value : 'missing';
    } catch (error) {
      if (error instanceof BadRecordError) return 'invalid';
      if (!(error instanceof SecretBoxError)) throw error;
      this.deps.log.error({ key, reason: error.message }, "the instance secret does not open with this node's key");
      return 'invalid';
    }
  }

  /**
   * Status `starting`, then the readiness command until it passes. Returns the running
   * container's state once ready; otherwise the status already says why and this returns
   * undefined. `extra` adds fields to the statuses written here.
   */
  async awaitReady(
    ref: ReplicaRef,
    containerId: string,
    runtime: ServiceRuntime,
    signal: AbortSignal,
    extra: () => Partial<StatusUpdate> = () => ({}),
    /** The container as this pass just inspected it: not asked again (a start's downtime). */
    observed?: ContainerState,
  ): Promise<{ container: ContainerState; port: number } | undefined> {
    const { docker, statuses } = this.deps;
    const fresh = observed?.id === containerId && observed.running ? observed : undefined;
    const state = fresh ?? (await docker.inspectContainer(containerId));
    if (!state?.running) {
      await this.reportExit(ref, state ?? undefined, containerId);
      return undefined;
    }
    const port = state.publishedPorts[portSpec(runtime)];
    if (port === undefined) {
      await statuses.set(ref, { state: 'failed', containerId, message: `port ${portSpec(runtime)} is not published` });
      return undefined;
    }
    // Written while the check runs: a relocated or restarted service is often ready before
    // an etcd write under load is acknowledged, and each ms here is downtime.
    const announced = statuses.set(ref, {
      ...extra(),
      state: 'starting',
      containerId,
      message: 'waiting for the readiness check',
    });
    const spec = runtime.readiness.wire;
    const wire: WireCheck | undefined =
      spec && ((timeoutMs) => probeWire(spec.protocol, { ...spec, host: this.deps.identity.address, port }, timeoutMs));
    const outcome = await awaitReadiness(docker, containerId, runtime.readiness, signal, wire).finally(() => announced);
    if (outcome.kind === 'ready') return { container: state, port };
    if (outcome.kind === 'exited') {
      await this.reportExit(ref, await docker.inspectContainer(containerId), containerId);
      return undefined;
    }
    const logs = await this.#logs(containerId);
    const output = lastLines(outcome.lastOutput, 3);
    await statuses.set(ref, {
      ...extra(),
      state: 'failed',
      containerId,
      message: spec
        ? `not ready after ${runtime.readiness.timeoutSeconds} s: ${spec.protocol} on port ${port}: ${output}; ${describeLogs(logs)}`
        : `not ready after ${runtime.readiness.timeoutSeconds} s: readiness command exited with code ` +
          `${outcome.lastExitCode ?? 'none (still running)'}${output ? ` (${output})` : ''}; ${describeLogs(logs)}`,
    });
    return undefined;
  }

  /** Status `failed` with the exit code and the last log lines, and a `replica-failed` event. */
  async reportExit(
    ref: ReplicaRef,
    container: ContainerState | undefined,
    containerId = container?.id,
    cause?: string,
  ): Promise<void> {
    const exitCode = container?.exitCode ?? 'unknown';
    const oom = container?.oomKilled ? ' (killed: out of memory)' : '';
    const logs = containerId ? await this.#logs(containerId) : '';
    const { log, statuses, events, identity } = this.deps;
    log.warn({ instanceId: ref.instanceId, ordinal: ref.ordinal, exitCode }, 'replica container exited');
    const message = `${cause ? `${cause}; ` : ''}container exited with code ${exitCode}${oom}; ${describeLogs(logs)}`;
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
}
