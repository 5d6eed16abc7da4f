/**
 * "If node X died now": the controller's failover rules (docs/failover.md,
 * packages/scheduler/src/controller/failover.ts) applied to the instance as it is, for one
 * node. Pure.
 *
 * | replicas on the node          | instance                       | outcome                               |
 * |-------------------------------|--------------------------------|---------------------------------------|
 * | none                          | —                              | none                                  |
 * | a standby                     | replicated                     | standby-lost (sync: writes may wait)  |
 * | the only replica              | not replicated                 | outage until the node is back         |
 * | the primary                   | volume shipping                | failover to the newest copy, or blocked |
 * | the primary                   | no running standby elsewhere   | blocked                               |
 * | the primary                   | `required`, fencing would fail | blocked                               |
 * | the primary                   | async, best lags > max         | blocked                               |
 * | the primary                   | otherwise                      | failover to the most advanced standby |
 */

import type { FencingOutlook, NodeLossExplanation } from '@service-foundry/api';
import type { FailoverPolicy, FenceCheckRecord, IoPolicy } from '@service-foundry/core';

/**
 * Seconds from a primary's loss to the first write the new primary acknowledged through
 * the router, measured by `FAILOVERS=3 npm run bench:failover` on `sf up` with three
 * isolated nodes (docs/explain.md "Measured": p50 19.54 s, p99 58.84 s over 6 failovers,
 * on a 2-core machine at load average ~48). Rounded up; re-measure on your hosts.
 */
export const measuredWriteGapSeconds = { typical: 20, worst: 59 } as const;

export interface ReplicaFacts {
  ordinal: number;
  node: string;
  state: string;
  role: string | null;
  position: bigint | null;
}

export interface NodeLossInput {
  node: string;
  nodeAlive: (node: string) => boolean;
  replicas: readonly ReplicaFacts[];
  primary: { ordinal: number; node: string } | null;
  replicated: boolean;
  shipping: { intervalSeconds: number } | null;
  io: IoPolicy;
  /** The service acknowledges a write only once a standby has it, under `io.durability` (catalog). */
  synchronous: boolean;
  failover: FailoverPolicy;
  fenceDevices: { levels: number; devices: number } | undefined;
  fenceCheck: FenceCheckRecord | undefined;
  now: number;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

export function fencingOutlook(
  input: Pick<NodeLossInput, 'failover' | 'fenceDevices' | 'fenceCheck' | 'now'>,
): FencingOutlook {
  const { failover, fenceDevices, fenceCheck, now } = input;
  const lastCheck = fenceCheck
    ? {
        at: fenceCheck.checkedAt,
        ageSeconds: Math.max(0, Math.round((now - Date.parse(fenceCheck.checkedAt)) / 1000)),
        failing: fenceCheck.devices
          .filter((d) => !d.ok)
          .map((d) => `level ${d.level} ${d.device} (${d.reason || 'no answer'})`),
      }
    : null;
  let wouldSucceed: FencingOutlook['wouldSucceed'];
  if (failover.fencing === 'off') wouldSucceed = 'not-needed';
  else if (!fenceDevices || fenceDevices.devices === 0) wouldSucceed = 'no';
  else if (!fenceCheck) wouldSucceed = 'unknown';
  else {
    // Fencing succeeds when every device of some level works (levels are tried in order).
    const levels = new Map<number, boolean>();
    for (const d of fenceCheck.devices) levels.set(d.level, (levels.get(d.level) ?? true) && d.ok);
    wouldSucceed = [...levels.values()].some(Boolean) ? 'yes' : 'no';
  }
  return {
    policy: failover.fencing,
    devicesConfigured: fenceDevices?.devices ?? 0,
    levels: fenceDevices?.levels ?? 0,
    lastCheck,
    wouldSucceed,
  };
}

function fencingSentence(node: string, f: FencingOutlook): string {
  if (f.policy === 'off')
    return `Fencing is off for this instance: the node's agent fencing itself is the only protection.`;
  if (f.devicesConfigured === 0) return `Node ${node} has no fence devices configured: fencing it would fail.`;
  const devices = `${plural(f.devicesConfigured, 'fence device')} in ${plural(f.levels, 'level')}`;
  if (!f.lastCheck) return `Node ${node} has ${devices}, not checked yet: whether fencing would work is unknown.`;
  const checked = `last checked ${f.lastCheck.ageSeconds} s ago`;
  if (f.wouldSucceed === 'yes') {
    const failing = f.lastCheck.failing.length ? ` (failing: ${f.lastCheck.failing.join('; ')})` : '';
    return `Fencing ${node} would work: ${devices}, ${checked}, a whole level answered${failing}.`;
  }
  return `Fencing ${node} would fail: ${devices}, ${checked}, failing: ${f.lastCheck.failing.join('; ')}.`;
}

export function explainNodeLoss(input: NodeLossInput): NodeLossExplanation {
  const { node, replicas, primary, io, failover } = input;
  const here = replicas.filter((r) => r.node === node);
  const fencing = fencingOutlook(input);
  const result = (fields: Partial<NodeLossExplanation> & Pick<NodeLossExplanation, 'outcome' | 'sentences'>) => ({
    node,
    ordinals: here.map((r) => r.ordinal),
    promoted: null,
    expectedWriteGapSeconds: null,
    dataAtRiskBytes: 0,
    fencing,
    blockers: [],
    ...fields,
  });
  const lead = `If ${node} died now:`;
  if (here.length === 0)
    return result({ outcome: 'none', sentences: [`${lead} nothing happens to this instance (no replica there).`] });

  const { synchronous } = input;
  if (!primary || !here.some((r) => r.ordinal === primary.ordinal)) {
    // Only standbys here.
    const others = replicas.filter(
      (r) => r.node !== node && r.ordinal !== primary?.ordinal && r.state === 'running' && input.nodeAlive(r.node),
    );
    const sentences = [
      `${lead} replica ${here.map((r) => r.ordinal).join(', ')} (a standby) is lost; the primary keeps serving.`,
    ];
    const blockers: string[] = [];
    if (input.replicated && io.durability !== 'async' && others.length === 0) {
      const stall = `with ${io.durability} durability and no other running standby, writes wait (or are refused) until a standby is back`;
      blockers.push(stall);
      sentences.push(`Writes would stop: ${stall}.`);
    } else if (input.replicated) {
      sentences.push(
        `No data is at risk; ${plural(others.length, 'other standby')} keep${others.length === 1 ? 's' : ''} a copy.`,
      );
    }
    return result({ outcome: 'standby-lost', blockers, sentences });
  }

  // The primary is here.
  if (!input.replicated && !input.shipping) {
    return result({
      outcome: 'outage',
      dataAtRiskBytes: null,
      blockers: ['the instance has a single copy'],
      sentences: [
        `${lead} the instance is down until ${node} is back: it has a single copy, on that node's volume (restore a backup elsewhere with sf restore if the node is gone for good).`,
      ],
    });
  }

  const blockers: string[] = [];
  if (failover.fencing === 'required' && fencing.wouldSucceed !== 'yes') {
    blockers.push(
      fencing.wouldSucceed === 'unknown'
        ? `fencing ${node} is required and its devices were never checked`
        : `fencing ${node} is required and would fail`,
    );
  }
  const candidates = replicas.filter(
    (r) => r.node !== node && r.ordinal !== primary.ordinal && r.state === 'running' && input.nodeAlive(r.node),
  );
  const top = here.find((r) => r.ordinal === primary.ordinal)?.position ?? null;
  let best: ReplicaFacts | undefined;
  if (input.shipping) best = candidates[0];
  else {
    // As the controller: running standbys that reported a position; the most advanced,
    // the lowest ordinal among equals.
    for (const c of candidates.filter((r) => r.role === 'replica' && r.position !== null)) {
      if (!best || (c.position as bigint) > (best.position as bigint)) best = c;
    }
  }
  if (!best) blockers.push('no running standby on a live node to promote');
  let dataAtRisk: number | null = synchronous ? 0 : null;
  if (best && !synchronous && top !== null && best.position !== null) {
    const lag = top - best.position;
    dataAtRisk = Number(lag > 0n ? lag : 0n);
    // The controller applies max_lag_bytes under async durability only.
    if (io.durability === 'async' && dataAtRisk > failover.maxLagBytes) {
      blockers.push(`the best standby lags ${dataAtRisk} bytes, over max_lag_bytes ${failover.maxLagBytes}`);
    }
  }
  if (input.shipping) dataAtRisk = null;

  const sentences = [`${lead} the primary (replica ${primary.ordinal}) is lost.`, fencingSentence(node, fencing)];
  const blocked =
    failover.fencing === 'required' ? blockers.length > 0 : blockers.some((b) => !b.startsWith('fencing'));
  if (blocked || !best) {
    sentences.push(`Failover would be blocked: ${blockers.join('; ')}. Writes stop until ${node} is back or fenced.`);
    return result({ outcome: 'blocked', dataAtRiskBytes: dataAtRisk, blockers, sentences });
  }
  const gap = { ...measuredWriteGapSeconds };
  if (failover.fencing === 'best-effort' && fencing.wouldSucceed !== 'yes') {
    // Best-effort waits out the fencing timeout before it promotes without a confirmed fence.
    gap.typical += failover.fencingTimeoutSeconds;
    gap.worst += failover.fencingTimeoutSeconds;
    blockers.push(`fencing would not confirm: promotion waits the ${failover.fencingTimeoutSeconds} s fencing timeout`);
  }
  sentences.push(
    `Replica ${best.ordinal} on ${best.node} would be promoted${best.position !== null ? ` (position ${best.position})` : ''}; writes pause about ${gap.typical} s (up to ${gap.worst} s measured).`,
  );
  if (input.shipping) {
    sentences.push(
      `Volume shipping: writes since the standby's last complete copy (at most ${input.shipping.intervalSeconds} s of them) would be lost.`,
    );
  } else if (synchronous) {
    sentences.push(`No acknowledged write is lost: ${io.durability} acknowledges a commit only once a standby has it.`);
  } else {
    // Async, or a service that never waits for its standbys (Redis: `received` only refuses
    // writes without a connected replica).
    sentences.push(
      dataAtRisk === null
        ? `Acknowledged writes not yet on the standby would be lost (${io.durability} does not wait for it); its lag is unknown.`
        : `Up to ${dataAtRisk} bytes of acknowledged writes would be lost (${io.durability} does not wait for the standby: its current lag).`,
    );
  }
  return result({
    outcome: 'failover',
    promoted: { ordinal: best.ordinal, node: best.node },
    expectedWriteGapSeconds: gap,
    dataAtRiskBytes: dataAtRisk,
    blockers,
    sentences,
  });
}
