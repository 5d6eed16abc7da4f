/** The part of a chaos bench that runs one `sf chaos` round (bench:chaos, bench:control-plane). */
import { waitFor } from '@service-foundry/core';
import type { TestCluster } from '@service-foundry/test-support/cluster';

/** What `sf chaos --json` reports for one round (the fields the benches read). */
export interface RoundJson {
  instance: string;
  service: string;
  durability: string;
  fault: string;
  target: string;
  promotedAfterMs: number | null;
  verdict: {
    acknowledged: number;
    lost: number[];
    inDoubt: number;
    longestGapMs: number;
    oldPrimaryWritesAfterPromotion: number;
    promiseKept: boolean;
    broken: string[];
  };
}

function parseReport(stdout: string): RoundJson | undefined {
  try {
    return (JSON.parse(stdout) as RoundJson[])[0];
  } catch {
    return undefined;
  }
}

interface Whole {
  phase: string;
  primary: unknown;
  replicas: { desired: number };
  replicaDetails: Array<{ state: string }>;
}

/**
 * A fault on a node hits every instance with a replica there, and `sf chaos` waits only for
 * its own instance: the next round starts once all of them are whole again.
 */
export async function allWhole(cluster: TestCluster, names: readonly string[]): Promise<void> {
  await waitFor(
    async () => {
      for (const name of names) {
        const shown = await cluster.sf('service', name, '--json');
        if (shown.code !== 0) return undefined;
        const detail = JSON.parse(shown.stdout) as Whole;
        const running = detail.replicaDetails.filter((r) => r.state === 'running').length;
        if (detail.phase !== 'ready' || !detail.primary || running !== detail.replicas.desired) return undefined;
      }
      return true;
    },
    { description: 'every instance at full strength', timeoutMs: 600_000, intervalMs: 2000 },
  );
}

/**
 * One `sf chaos NAME --fault K --target T --duration S --json`, once every instance in
 * `names` is whole: the round's report, or the error that kept it from having one.
 */
export async function chaosRound(
  cluster: TestCluster,
  names: readonly string[],
  round: { instance: string; kind: string; target: string; durationS: number },
): Promise<RoundJson | string> {
  const ready = await allWhole(cluster, names).then(
    () => undefined,
    (error: Error) => error.message,
  );
  if (ready) return ready;
  const args = ['chaos', round.instance, '--fault', round.kind, '--target', round.target];
  const result = await cluster.sf(...args, '--duration', String(round.durationS), '--json');
  // Exit 1 with a JSON report is a broken promise, which is a result; anything else is an error.
  const report = parseReport(result.stdout);
  if (report) return report;
  return (result.stderr || result.stdout).trim().split('\n').at(-1) ?? `exit ${result.code}`;
}
