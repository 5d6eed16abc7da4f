import {
  type Etcd3,
  type EventLog,
  type InstanceSecret,
  type Keyspace,
  type Logger,
  readSealed,
  type SecretBox,
  SecretBoxError,
  type ServiceRuntime,
} from '@service-foundry/core';
import { type NodeIdentity, portSpec, type ReplicaRef } from './container-spec.js';
import type { ContainerState, DockerRuntime } from './docker-runtime.js';
import { lastLines } from './docker-streams.js';
import { awaitReadiness } from './readiness.js';
import { isInstanceSecret } from './records.js';
import type { StatusUpdate, StatusWriter } from './status-writer.js';

const logLinesInMessages = 10;
const secretRetryMs = 1000;

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
  /** A failed replica is restarted no sooner than half this after its failure. */
  reconcileIntervalMs: number;
  retryLater: (ref: ReplicaRef, ms: number) => void;
}

/**
 * The steps every replica container goes through, standalone or replicated: prerequisites
 * (image, secret), readiness, crash reports and the back-off before a restart.
 */
export class ContainerLifecycle {
  constructor(private readonly deps: ContainerLifecycleDeps) {}

  /**
   * The instance secret, once the image exists and the secret is valid. Otherwise the
   * status says what is missing (retried every second for the secret) and this returns
   * undefined.
   */
  async prerequisites(ref: ReplicaRef, runtime: ServiceRuntime): Promise<InstanceSecret | undefined> {
    const { docker, statuses } = this.deps;
    if (!(await docker.hasImage(runtime.image))) {
      await statuses.set(ref, {
        state: 'failed',
        message: `image ${runtime.image} not found: run \`sf images build\``,
      });
      return undefined;
    }
    const key = this.deps.keys.secret(ref.instanceId);
    const secret = await readSealed<unknown>(this.deps.client, this.deps.secrets, key).catch((error: unknown) => {
      if (!(error instanceof SecretBoxError)) throw error;
      this.deps.log.error({ key, reason: error.message }, "the instance secret does not open with this node's key");
      return null;
    });
    if (!secret || !isInstanceSecret(secret.value)) {
      await statuses.set(ref, {
        state: 'creating',
        message:
          secret === undefined
            ? 'waiting for the instance secret'
            : 'the instance secret is malformed or sealed with another key; waiting for a valid one',
      });
      this.deps.retryLater(ref, secretRetryMs);
      return undefined;
    }
    return secret.value;
  }

  /** True when a failed replica waited long enough; otherwise schedules the retry. */
  backoffOver(ref: ReplicaRef, failedAt: string): boolean {
    const waitMs = this.deps.reconcileIntervalMs / 2 - (Date.now() - Date.parse(failedAt));
    if (waitMs <= 0) return true;
    this.deps.retryLater(ref, waitMs);
    return false;
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
  ): Promise<{ container: ContainerState; port: number } | undefined> {
    const { docker, statuses } = this.deps;
    const state = await docker.inspectContainer(containerId);
    if (!state?.running) {
      await this.reportExit(ref, state ?? undefined, containerId);
      return undefined;
    }
    const port = state.publishedPorts[portSpec(runtime)];
    if (port === undefined) {
      await statuses.set(ref, { state: 'failed', containerId, message: `port ${portSpec(runtime)} is not published` });
      return undefined;
    }
    await statuses.set(ref, { ...extra(), state: 'starting', containerId, message: 'waiting for the readiness check' });
    const outcome = await awaitReadiness(docker, containerId, runtime.readiness, signal);
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
      message:
        `not ready after ${runtime.readiness.timeoutSeconds} s: readiness command exited with code ` +
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
