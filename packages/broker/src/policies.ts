import type { FailoverPolicy, IoPolicy, PlanSizing } from '@service-foundry/core';

/**
 * The instance's IO and failover settings: the user's parameters over the plan's defaults
 * over the platform's. The platform's own defaults favour safety: a replicated plan that
 * says nothing still gets synchronous acknowledgement and required fencing.
 */
export function resolvePolicies(
  sizing: PlanSizing,
  parameters: Record<string, unknown>,
): { io: IoPolicy; failover: FailoverPolicy } {
  const d = sizing.defaults ?? {};
  const pick = <T>(name: string, fallback: T): T => (parameters[name] as T | undefined) ?? fallback;
  const replicated = sizing.replicas > 1;
  return {
    io: {
      durability: pick('durability', d.durability ?? (replicated ? 'remote-fsync' : 'async')),
      localIo: pick('local_io', d.local_io ?? 'fsync'),
    },
    failover: {
      fencing: pick('fencing', d.fencing ?? (replicated ? 'required' : 'off')),
      fencingTimeoutSeconds: pick('fencing_timeout_s', d.fencing_timeout_s ?? 60),
      maxLagBytes: pick('max_lag_bytes', d.max_lag_bytes ?? 16 * 1024 * 1024),
    },
  };
}

/** Parameters an update may change on a running instance; applied live by the agents. */
export const liveUpdatableParameters: ReadonlySet<string> = new Set(['durability', 'local_io']);

/**
 * Why `durability` cannot work for this instance, if it cannot. Anything but `async` makes
 * every commit wait for a streaming standby: with none (one replica, or a plan whose
 * standbys are volume copies) each COMMIT would hang while the instance says ready.
 */
export function durabilityProblem(
  durability: string,
  replicas: number,
  streamingStandbys: boolean,
): string | undefined {
  if (durability === 'async') return undefined;
  if (!streamingStandbys) {
    return `durability ${durability} waits for a streaming standby and this plan has none; use async`;
  }
  if (replicas < 2) {
    return `durability ${durability} waits for a standby and an instance of ${replicas} replica has none; use async, or at least 2 replicas`;
  }
  return undefined;
}
