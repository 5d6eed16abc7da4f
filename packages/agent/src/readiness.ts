import { setTimeout as delay } from 'node:timers/promises';
import type { ServiceRuntime } from '@service-foundry/core';
import type { DockerRuntime, ExecResult } from './docker-runtime.js';
import type { WireProbeResult } from './wire-probe.js';

export type ReadinessOutcome =
  | { kind: 'ready' }
  | { kind: 'exited'; exitCode: number; oomKilled: boolean }
  | { kind: 'timeout'; lastExitCode: number | null; lastOutput: string };

/**
 * Pause between readiness attempts: short for the first seconds, since a service on an
 * existing volume (a relocation's target, a restart) is up in a few hundred ms and every
 * ms here is downtime; then longer, since a fresh one takes seconds. A wire check costs a
 * connection, not a process in the container: it runs far more often.
 */
const quickIntervalMs = { exec: 50, wire: 10 };
const quickPhaseMs = 3000;
const slowIntervalMs = 250;
/** One attempt may not take longer than this, whatever the overall deadline. */
const attemptTimeoutMs = { exec: 10_000, wire: 1_000 };
/** Between wire attempts, whether the container still runs is asked at most this often. */
const stateCheckIntervalMs = 200;

/** One attempt of a wire check (wire-probe.ts), bound to the container's published port. */
export type WireCheck = (timeoutMs: number) => Promise<WireProbeResult>;

/**
 * Runs the service's readiness check until it passes, the container stops, or
 * `timeoutSeconds` pass: `wire` when given (the catalog's `readiness.wire`), else the
 * catalog's command inside the container. Throws when `signal` aborts.
 */
export async function awaitReadiness(
  docker: DockerRuntime,
  containerId: string,
  readiness: ServiceRuntime['readiness'],
  signal: AbortSignal,
  wire?: WireCheck,
): Promise<ReadinessOutcome> {
  const kind = wire ? 'wire' : 'exec';
  const deadline = Date.now() + readiness.timeoutSeconds * 1000;
  let last: ExecResult = { exitCode: null, output: '', stdout: '', stderr: '' };
  const startedAt = Date.now();
  let stateCheckedAt = 0;
  for (;;) {
    signal.throwIfAborted();
    const remaining = Math.max(1000, Math.min(attemptTimeoutMs[kind], deadline - Date.now()));
    if (wire) {
      const probe = await wire(remaining);
      if (probe.ready) return { kind: 'ready' };
      last = { exitCode: null, output: probe.detail, stdout: '', stderr: probe.detail };
    } else {
      try {
        last = await docker.exec(containerId, readiness.exec, remaining);
      } catch (error) {
        // Exec fails while the container is stopping or gone; the state check below says which.
        const message = (error as Error).message;
        last = { exitCode: null, output: message, stdout: '', stderr: message };
      }
      if (last.exitCode === 0) return { kind: 'ready' };
    }
    if (!wire || Date.now() - stateCheckedAt >= stateCheckIntervalMs || Date.now() >= deadline) {
      stateCheckedAt = Date.now();
      const state = await docker.inspectContainer(containerId);
      if (!state?.running)
        return { kind: 'exited', exitCode: state?.exitCode ?? -1, oomKilled: state?.oomKilled ?? false };
    }
    if (Date.now() >= deadline) return { kind: 'timeout', lastExitCode: last.exitCode, lastOutput: last.output };
    const intervalMs = Date.now() - startedAt < quickPhaseMs ? quickIntervalMs[kind] : slowIntervalMs;
    await delay(intervalMs, undefined, { signal });
  }
}
