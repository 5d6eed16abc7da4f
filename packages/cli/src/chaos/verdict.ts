/**
 * What a chaos round proves, from what the client saw and what the instance holds after
 * healing. Pure, so every rule below is tested on its own
 * (packages/cli/test/chaos-verdict.test.ts).
 *
 * | figure | meaning |
 * | --- | --- |
 * | acknowledged | writes whose commit returned (and, with synchronous durability, reached a standby) |
 * | lost | acknowledged, not read back: the durability promise is broken when the promise is `remote-fsync` or `received` |
 * | unexpected | read back, never sent: corruption or another writer; always a broken promise |
 * | in doubt | sent, no answer (the connection broke): present or not, both are correct |
 * | failed | refused with an answer (the write surely did not happen) yet read back: a broken promise |
 * | longest gap | the longest time without an acknowledgement, from the last one before the fault until the workload stopped (the stretch after the last one included): the RTO a client saw |
 * | old-primary writes | writes the old primary accepted *directly* (not through the router) after a new primary was promoted: two primaries, always a broken promise |
 */

export type PromisedDurability = 'async' | 'received' | 'remote-fsync';

export interface WriteOutcomes {
  /** Every id sent. */
  sent: readonly number[];
  /** Ids acknowledged, with when (ms since the epoch). */
  acknowledged: ReadonlyArray<{ id: number; at: number }>;
  /** Ids that got a definite refusal (an error reply on a healthy connection). */
  refused: readonly number[];
  /** Ids read back after healing (negative ids are direct probe writes, left out). */
  readBack: ReadonlySet<number>;
  /** When the old primary accepted a direct write (to its own address, not through the router). */
  oldPrimaryAcceptedAt: readonly number[];
  /** When the new primary took over (first sight of a newer epoch); undefined when none. */
  promotedAt: number | undefined;
  /** When the fault was injected. */
  faultAt: number;
  /** When the workload stopped writing (after the heal, with the instance whole again). */
  stoppedAt: number;
}

export interface Verdict {
  acknowledged: number;
  lost: number[];
  unexpected: number[];
  inDoubt: number;
  refusedButPresent: number[];
  longestGapMs: number;
  oldPrimaryWritesAfterPromotion: number;
  /** False when the instance broke the promise its durability makes. */
  promiseKept: boolean;
  /** Why the promise was broken, one line each; empty when kept. */
  broken: string[];
}

/**
 * The longest time without an acknowledgement from the last one before the fault until
 * the workload stopped. The stretch after the last acknowledgement counts too: writes
 * that never came back within the round are the longest gap of all, not none.
 */
export function longestGap(acknowledged: ReadonlyArray<{ at: number }>, faultAt: number, stoppedAt: number): number {
  const times = acknowledged.map((a) => a.at).sort((a, b) => a - b);
  const before = times.filter((t) => t <= faultAt).at(-1) ?? faultAt;
  let gap = 0;
  let previous = before;
  for (const t of times) {
    if (t <= before) continue;
    gap = Math.max(gap, t - previous);
    previous = t;
  }
  return Math.max(gap, stoppedAt - previous);
}

export function verdict(outcomes: WriteOutcomes, durability: PromisedDurability): Verdict {
  const sent = new Set(outcomes.sent);
  const acked = new Set(outcomes.acknowledged.map((a) => a.id));
  const refused = new Set(outcomes.refused);
  const lost = [...acked].filter((id) => !outcomes.readBack.has(id)).sort((a, b) => a - b);
  // Negative ids are the split-brain probe's direct writes (see DirectProbe), not the workload's.
  const unexpected = [...outcomes.readBack].filter((id) => id > 0 && !sent.has(id)).sort((a, b) => a - b);
  const refusedButPresent = [...refused].filter((id) => outcomes.readBack.has(id)).sort((a, b) => a - b);
  const inDoubt = [...sent].filter((id) => !acked.has(id) && !refused.has(id)).length;
  const oldPrimaryWrites =
    outcomes.promotedAt === undefined
      ? 0
      : outcomes.oldPrimaryAcceptedAt.filter((at) => at > (outcomes.promotedAt as number)).length;
  const broken: string[] = [];
  if (lost.length > 0 && durability !== 'async') {
    broken.push(`${lost.length} acknowledged write(s) lost under ${durability}`);
  }
  if (unexpected.length > 0) broken.push(`${unexpected.length} write(s) read back that were never sent`);
  if (refusedButPresent.length > 0) broken.push(`${refusedButPresent.length} refused write(s) present after all`);
  if (oldPrimaryWrites > 0) {
    broken.push(`the old primary accepted ${oldPrimaryWrites} direct write(s) after the new one was promoted`);
  }
  return {
    acknowledged: acked.size,
    lost,
    unexpected,
    inDoubt,
    refusedButPresent,
    longestGapMs: longestGap(outcomes.acknowledged, outcomes.faultAt, outcomes.stoppedAt),
    oldPrimaryWritesAfterPromotion: oldPrimaryWrites,
    promiseKept: broken.length === 0,
    broken,
  };
}
