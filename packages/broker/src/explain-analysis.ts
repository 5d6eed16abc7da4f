/**
 * `sf explain NAME`: one instance in plain sentences with the numbers behind them — where
 * each replica runs and why, what happens if each node died now, durability, lag, the last
 * backup, and risks. A pure function of the records the route read (explain-inputs.ts),
 * so every answer is tested as a model (test/explain-analysis.test.ts).
 */

import type { InstanceExplanation, NodeView, ReplicaExplanation } from '@service-foundry/api';
import type {
  BackupRecord,
  FailoverPolicy,
  FenceCheckRecord,
  InstanceRecord,
  IoPolicy,
  PlacementRecord,
  ReplicaStatus,
} from '@service-foundry/core';
import { explainNodeLoss, type ReplicaFacts } from './explain-node-loss.js';
import { explainPlacement } from './explain-placement.js';

/** Share of a node's capacity above which it counts as near capacity. */
export const nearCapacityShare = 0.9;
/** A backup older than this is a risk (the alert rule in docs/alerts.yml says the same). */
export const backupMaxAgeSeconds = 24 * 3600;

const defaultIo: IoPolicy = { durability: 'async', localIo: 'fsync' };
const defaultFailover: FailoverPolicy = {
  fencing: 'required',
  fencingTimeoutSeconds: 60,
  maxLagBytes: 16 * 1024 * 1024,
};

export interface ExplainInput {
  now: number;
  instance: InstanceRecord;
  /** The catalog's replication for the service and plan (native streaming replication). */
  replicated: boolean;
  /** Catalog `replication.acknowledgedOnStandby`: durabilities under which a write waits for a standby. */
  acknowledgedOnStandby: readonly string[];
  shipping: { intervalSeconds: number } | null;
  requiredNodeLabels: Readonly<Record<string, string>>;
  primary: { ordinal: number; node: string; epoch: number } | null;
  placements: readonly PlacementRecord[];
  statuses: readonly ReplicaStatus[];
  nodes: readonly NodeView[];
  /** Per node: how many fence levels and devices are configured. */
  fenceDevices: ReadonlyMap<string, { levels: number; devices: number }>;
  fenceChecks: ReadonlyMap<string, FenceCheckRecord>;
  backups: readonly BackupRecord[];
}

function age(now: number, at: string): number {
  return Math.max(0, Math.round((now - Date.parse(at)) / 1000));
}

function describeAge(seconds: number): string {
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172_800) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86_400).toFixed(1)} days`;
}

export function explainInstance(input: ExplainInput): InstanceExplanation {
  const { instance, now, nodes } = input;
  const io = instance.io ?? defaultIo;
  const failover = instance.failover ?? defaultFailover;
  const byNode = new Map(nodes.map((n) => [n.name, n]));
  const statusOf = new Map(input.statuses.map((s) => [s.ordinal, s]));
  const placements = [...input.placements].sort((a, b) => a.ordinal - b.ordinal);
  const replicatedNow = input.replicated && instance.replicas > 1;
  const primaryPosition = input.primary ? statusOf.get(input.primary.ordinal)?.position : undefined;

  const replicas: ReplicaExplanation[] = placements.map((placement) => {
    const status = statusOf.get(placement.ordinal);
    const why = explainPlacement(placement, placements, instance.resources, input.requiredNodeLabels, nodes);
    const isPrimary = input.primary?.ordinal === placement.ordinal;
    const lagBytes = isPrimary
      ? 0
      : status?.position !== undefined && primaryPosition !== undefined
        ? Math.max(0, Number(BigInt(primaryPosition) - BigInt(status.position)))
        : null;
    const role = status?.role ?? (isPrimary ? 'primary' : null);
    const failed = why.filters.filter((f) => !f.passed);
    const sentences = [
      `Replica ${placement.ordinal} runs on ${placement.node}${role ? ` as ${role}` : ''} (${status?.state ?? 'no status yet'}), placed ${describeAge(age(now, placement.placedAt))} ago by ${placement.scheduler}.`,
      failed.length === 0
        ? `${placement.node} passes every scheduler filter now (${why.filters.map((f) => f.filter).join(', ')}); scores ${why.scores.map((s) => `${s.score} ${s.value}×${s.weight}`).join(', ')}; ${why.alternatives.length} node${why.alternatives.length === 1 ? '' : 's'} would take it, best ${why.alternatives[0]?.node ?? '-'}.`
        : `${placement.node} would not be chosen now: ${failed.map((f) => `${f.filter}: ${f.reason}`).join('; ')}.`,
    ];
    if (replicatedNow && !isPrimary && lagBytes !== null) {
      sentences.push(`It is ${lagBytes} bytes behind the primary (position ${status?.position}).`);
    }
    return {
      ordinal: placement.ordinal,
      node: placement.node,
      role,
      state: status?.state ?? 'placed',
      position: status?.position ?? null,
      lagBytes: replicatedNow || isPrimary ? lagBytes : null,
      placedAt: placement.placedAt,
      placedBy: placement.scheduler,
      previousNodes: placement.previousNodes ?? [],
      filters: why.filters,
      scores: why.scores,
      alternatives: why.alternatives,
      sentences,
    };
  });

  const facts: ReplicaFacts[] = placements.map((p) => {
    const status = statusOf.get(p.ordinal);
    return {
      ordinal: p.ordinal,
      node: p.node,
      state: status?.state ?? 'placed',
      role: status?.role ?? null,
      position: status?.position !== undefined ? BigInt(status.position) : null,
    };
  });
  const lossNodes = [
    ...new Set([...nodes.filter((n) => n.alive).map((n) => n.name), ...placements.map((p) => p.node)]),
  ].sort();
  const ifNodeDies = lossNodes.map((node) =>
    explainNodeLoss({
      node,
      nodeAlive: (name) => byNode.get(name)?.alive === true && byNode.get(name)?.fence !== 'fenced',
      replicas: facts,
      primary: input.primary,
      replicated: replicatedNow,
      shipping: input.shipping,
      io,
      synchronous: input.acknowledgedOnStandby.includes(io.durability),
      failover,
      fenceDevices: input.fenceDevices.get(node),
      fenceCheck: input.fenceChecks.get(node),
      now,
    }),
  );

  const completed = input.backups
    .filter((b) => b.state === 'completed' && b.completedAt)
    .sort((a, b) => (b.completedAt as string).localeCompare(a.completedAt as string))[0];
  const backup = completed
    ? {
        id: completed.id,
        completedAt: completed.completedAt as string,
        ageSeconds: age(now, completed.completedAt as string),
        node: completed.node ?? null,
      }
    : null;

  const risks = findRisks(input, replicas, backup, failover, io);
  const head = [
    `${instance.name} (${instance.serviceName} ${instance.planName}) is ${instance.phase}, ${placements.length} of ${instance.replicas} replica${instance.replicas === 1 ? '' : 's'} placed${input.primary ? `, primary replica ${input.primary.ordinal} on ${input.primary.node} at epoch ${input.primary.epoch}` : ', no primary'}.`,
    replicatedNow
      ? `Durability ${io.durability}, local IO ${io.localIo}; fencing ${failover.fencing} (timeout ${failover.fencingTimeoutSeconds} s)${io.durability === 'async' ? `, a standby more than ${failover.maxLagBytes} bytes behind is never promoted` : ''}.`
      : input.shipping
        ? `Volume shipping: standbys copy the primary's volume every ${input.shipping.intervalSeconds} s; local IO ${io.localIo}.`
        : `A single copy; local IO ${io.localIo}.`,
  ];
  const backupSentence = backup
    ? `Last backup ${backup.id} completed ${describeAge(backup.ageSeconds)} ago${backup.node ? ` (kept on ${backup.node})` : ''}.`
    : 'No completed backup.';
  const sentences = [
    ...head,
    ...replicas.flatMap((r) => r.sentences),
    ...ifNodeDies.flatMap((n) => n.sentences),
    backupSentence,
    ...(risks.length ? risks.map((r) => `Risk: ${r}.`) : ['No risk found.']),
  ];
  return {
    id: instance.id,
    name: instance.name,
    service: instance.serviceName,
    plan: instance.planName,
    phase: instance.phase,
    generatedAt: new Date(now).toISOString(),
    durability: replicatedNow ? io.durability : null,
    localIo: io.localIo,
    primary: input.primary,
    replicas,
    ifNodeDies,
    backup,
    risks,
    sentences,
  };
}

function findRisks(
  input: ExplainInput,
  replicas: readonly ReplicaExplanation[],
  backup: InstanceExplanation['backup'],
  failover: FailoverPolicy,
  io: IoPolicy,
): string[] {
  const risks: string[] = [];
  const byNode = new Map(input.nodes.map((n) => [n.name, n]));
  const zones = new Map<string, number[]>();
  for (const r of replicas) {
    const zone = r.node ? byNode.get(r.node)?.labels.zone : undefined;
    if (zone !== undefined) zones.set(zone, [...(zones.get(zone) ?? []), r.ordinal]);
  }
  for (const [zone, ordinals] of zones) {
    if (ordinals.length > 1) risks.push(`replicas ${ordinals.join(' and ')} share zone ${zone}: losing it loses both`);
  }
  for (const name of new Set(replicas.map((r) => r.node).filter((n): n is string => n !== null))) {
    const node = byNode.get(name);
    if (!node) continue;
    if (!node.alive) risks.push(`node ${name} holds a replica and is not alive`);
    if (node.fence && node.fence !== 'unfenced') risks.push(`node ${name} holds a replica and is ${node.fence}`);
    if (node.control?.cordoned || node.control?.draining) {
      risks.push(`node ${name} holds a replica and is ${node.control.draining ? 'draining' : 'cordoned'}`);
    }
    const cap = node.capacity;
    if (cap) {
      const shares: Array<[string, number]> = [
        ['cpu', node.allocated.cpuMillis / cap.cpuMillis],
        ['memory', node.allocated.memoryMb / cap.memoryMb],
        ['disk', node.allocated.diskMb / cap.diskMb],
      ];
      const full = shares.filter(([, share]) => share >= nearCapacityShare);
      if (full.length) {
        risks.push(
          `node ${name} is near capacity (${full.map(([what, share]) => `${what} ${Math.round(share * 100)}%`).join(', ')}): a replica that must move there may not fit`,
        );
      }
    }
    const check = input.fenceChecks.get(name);
    const failing = check?.devices.filter((d) => !d.ok) ?? [];
    if (failing.length) {
      risks.push(
        `a fence device of ${name} failed its last check (${failing.map((d) => `${d.device}: ${d.reason || 'no answer'}`).join('; ')})`,
      );
    }
    if (
      failover.fencing === 'required' &&
      input.replicated &&
      input.instance.replicas > 1 &&
      !input.fenceDevices.get(name)?.devices
    ) {
      risks.push(`node ${name} has no fence devices while the instance requires fencing: losing it blocks failover`);
    }
  }
  if (io.durability === 'async') {
    for (const r of replicas) {
      if (r.lagBytes !== null && r.lagBytes > failover.maxLagBytes) {
        risks.push(
          `replica ${r.ordinal} lags ${r.lagBytes} bytes, over max_lag_bytes ${failover.maxLagBytes}: it would not be promoted`,
        );
      }
    }
  }
  if (io.localIo === 'unsafe') risks.push('local IO is unsafe: a crash of a server can corrupt its copy');
  if (!backup) risks.push('no completed backup');
  else if (backup.ageSeconds > backupMaxAgeSeconds)
    risks.push(`the last backup is ${describeAge(backup.ageSeconds)} old`);
  if (replicas.length < input.instance.replicas) {
    risks.push(`${input.instance.replicas - replicas.length} replica(s) not placed`);
  }
  return risks;
}
