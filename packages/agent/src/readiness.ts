import { setTimeout as delay } from 'node:timers/promises';
import type { ServiceRuntime } from '@service-foundry/core';
import type { DockerRuntime, ExecResult } from './docker-runtime.js';

export type ReadinessOutcome =
  | { kind: 'ready' }
  | { kind: 'exited'; exitCode: number; oomKilled: boolean }
  | { kind: 'timeout'; lastExitCode: number | null; lastOutput: string };

/**
 * Pause between readiness attempts: short for the first seconds, since a service on an
 * existing volume (a relocation's target, a restart) is up in a few hundred ms and every
 * ms here is downtime; then longer, since a fresh one takes seconds.
 */
const quickIntervalMs = 50;
const quickPhaseMs = 3000;
const slowIntervalMs = 250;
/** One attempt may not take longer than this, whatever the overall deadline. */
const attemptTimeoutMs = 10_000;

/**
 * Runs the service's readiness command inside the container until it exits 0, the
 * container stops, or `timeoutSeconds` pass. Throws when `signal` aborts.
 */
export async function awaitReadiness(
  docker: DockerRuntime,
  containerId: string,
  readiness: ServiceRuntime['readiness'],
  signal: AbortSignal,
): Promise<ReadinessOutcome> {
  const deadline = Date.now() + readiness.timeoutSeconds * 1000;
  let last: ExecResult = { exitCode: null, output: '', stdout: '', stderr: '' };
  const startedAt = Date.now();
  for (;;) {
    signal.throwIfAborted();
    const remaining = Math.max(1000, Math.min(attemptTimeoutMs, deadline - Date.now()));
    try {
      last = await docker.exec(containerId, readiness.exec, remaining);
    } catch (error) {
      // Exec fails while the container is stopping or gone; the state check below says which.
      const message = (error as Error).message;
      last = { exitCode: null, output: message, stdout: '', stderr: message };
    }
    if (last.exitCode === 0) return { kind: 'ready' };
    const state = await docker.inspectContainer(containerId);
    if (!state?.running)
      return { kind: 'exited', exitCode: state?.exitCode ?? -1, oomKilled: state?.oomKilled ?? false };
    if (Date.now() >= deadline) return { kind: 'timeout', lastExitCode: last.exitCode, lastOutput: last.output };
    const intervalMs = Date.now() - startedAt < quickPhaseMs ? quickIntervalMs : slowIntervalMs;
    await delay(intervalMs, undefined, { signal });
  }
}
