import { randomBytes } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import type { InstanceDetail, NodeView } from '@service-foundry/api';
import { type EventRecord, waitFor } from '@service-foundry/core';
import type { BrokerClient } from '../broker-client.js';
import { etcdMemberHealth } from '../cluster/etcd-health.js';
import { type Credentials, createKeyOf, deleteKeyOf } from '../commands/keys.js';
import { UsageError } from '../errors.js';
import { instancePath } from '../instance-path.js';
import { controlPlaneFaults, type FaultContext, type FaultKind, injectFault } from './faults.js';
import { PostgresDirectProbe, PostgresWorkload } from './postgres-workload.js';
import { RedisDirectProbe, RedisWorkload } from './redis-workload.js';
import { type PromisedDurability, type Verdict, verdict } from './verdict.js';
import type { DirectProbe, Workload } from './workload.js';

export interface RoundOptions {
  instance: string;
  fault: FaultKind;
  /** `primary`, `replica`, a node name, or (kill-process) a process name. */
  target: string;
  /** How long the fault lasts before it is healed. */
  durationMs: number;
  /** Writes acknowledged before the fault, so the baseline is a working instance. */
  warmUpWrites: number;
  /** Deadline for the instance to be whole again after the heal. */
  recoveryTimeoutMs: number;
}

export interface RoundResult {
  instance: string;
  service: string;
  durability: PromisedDurability;
  fault: string;
  target: string;
  epochBefore: number;
  epochAfter: number;
  promotedAfterMs: number | null;
  recoveredAfterMs: number;
  sent: number;
  verdict: Verdict;
  lastErrors: string[];
}

type Progress = (line: string) => void;

const detailOf = (broker: BrokerClient, name: string) => broker.get<InstanceDetail>(instancePath(name));

/**
 * When the controller wrote the new primary, from its `failover-promote` (or
 * `switchover-promote`) event: sampling `sf service` sees it late on a busy machine, and a
 * late promotion time would excuse old-primary writes made after the real one.
 */
async function promotionEventAt(broker: BrokerClient, instanceId: string, since: number): Promise<number | undefined> {
  const events = await broker.get<EventRecord[]>('/sf/v1/events?limit=500').catch(() => []);
  const times = events
    .filter((e) => e.instanceId === instanceId && /^(failover|switchover)-promote$/.test(e.kind))
    .map((e) => Date.parse(e.at))
    .filter((at) => at >= since);
  return times.length ? Math.min(...times) : undefined;
}

/** All replicas running, a primary, and every replica reporting a role: back to full strength. */
function whole(detail: InstanceDetail): boolean {
  const running = detail.replicaDetails.filter((r) => r.state === 'running').length;
  return detail.phase === 'ready' && detail.primary !== null && running === detail.replicas.desired;
}

/**
 * Every member of the cluster's own etcd answers again. An etcd member inside a node that
 * lost power or its link rejoins after the node's replicas run again; a next fault before
 * it does takes etcd's quorum with it (seen in bench:chaos: an isolation right after a
 * power loss cost a third node its lease, which fenced itself), so a round ends here.
 */
async function etcdWhole(
  local: NonNullable<FaultContext['local']>,
  timeoutMs: number,
  progress: Progress,
): Promise<void> {
  const started = Date.now();
  await waitFor(
    async () => (await etcdMemberHealth(local.stateDir, local.cluster)).every((member) => member.healthy) || undefined,
    { description: 'every etcd member answering again', timeoutMs, intervalMs: 500 },
  );
  progress(`every etcd member answers (${((Date.now() - started) / 1000).toFixed(1)} s)`);
}

async function pickNode(broker: BrokerClient, detail: InstanceDetail, target: string): Promise<string> {
  if (target === 'primary') {
    if (!detail.primary) throw new UsageError(`${detail.name} has no primary now`);
    return detail.primary.node;
  }
  if (target === 'replica') {
    const replica = detail.replicaDetails.find((r) => r.node && r.ordinal !== detail.primary?.ordinal);
    if (!replica?.node) throw new UsageError(`${detail.name} has no replica besides its primary`);
    return replica.node;
  }
  const nodes = (await broker.get<NodeView[]>('/sf/v1/nodes')).map((n) => n.name);
  if (!nodes.includes(target)) {
    throw new UsageError(`--target is primary, replica or a node (${nodes.join(', ')}); not ${JSON.stringify(target)}`);
  }
  return target;
}

/** The routers a service key names (`hosts`), or its one `host`. */
function routerHostsOf(key: Credentials): string[] {
  return key.hosts?.length ? key.hosts.map((h) => h.host) : [key.host];
}

function clientsFor(detail: InstanceDetail, key: Credentials, run: string, durability: PromisedDurability) {
  const ca = typeof key.ca_certificate === 'string' ? key.ca_certificate : undefined;
  const primary = detail.replicaDetails.find((r) => r.ordinal === detail.primary?.ordinal);
  if (detail.service === 'postgres') {
    const target = { ...key, hosts: routerHostsOf(key), database: key.database ?? 'sf', ca };
    const direct = primary?.host && primary.port ? { ...target, host: primary.host, port: primary.port } : undefined;
    return {
      workload: new PostgresWorkload(target, run) as Workload,
      probe: direct ? (new PostgresDirectProbe(direct, run) as DirectProbe) : undefined,
    };
  }
  if (detail.service === 'redis') {
    const target = {
      host: key.host,
      hosts: routerHostsOf(key),
      port: key.port,
      username: key.username,
      password: key.password,
      ca,
    };
    const direct = primary?.host && primary.port ? { ...target, host: primary.host, port: primary.port } : undefined;
    return {
      workload: new RedisWorkload(target, run, durability !== 'async') as Workload,
      probe: direct ? (new RedisDirectProbe(direct, run) as DirectProbe) : undefined,
    };
  }
  throw new UsageError(`sf chaos has no workload for ${detail.service}`);
}

/**
 * One chaos round: a key of its own, the workload through the router, the fault, the
 * split-brain probe writing straight to the old primary while the fault lasts, the heal,
 * the wait for full strength, the read-back and the verdict. The key and the workload's
 * data are removed at the end, whatever happened.
 */
export async function runRound(ctx: FaultContext, options: RoundOptions, progress: Progress): Promise<RoundResult> {
  const { broker } = ctx;
  const before = await detailOf(broker, options.instance);
  if (!whole(before))
    throw new UsageError(`${before.name} is not at full strength now (${before.message}); try again once it is`);
  const durability = (before.io?.durability ?? 'async') as PromisedDurability;
  const node = controlPlaneFaults.has(options.fault) ? undefined : await pickNode(broker, before, options.target);
  const run = randomBytes(4).toString('hex');
  const keyName = `sf-chaos-${run}`;
  const { credentials } = await createKeyOf(broker, before, keyName);
  const { workload, probe } = clientsFor(before, credentials, run, durability);
  const probeAccepted: number[] = [];
  let stopProbe = false;
  let probing: Promise<void> | undefined;
  try {
    await workload.prepare();
    workload.start();
    await waitFor(() => workload.acknowledged.length >= options.warmUpWrites || undefined, {
      description: `${options.warmUpWrites} acknowledged writes before the fault (last error: ${workload.errors.at(-1)?.message ?? 'none'})`,
      timeoutMs: 60_000,
      intervalMs: 50,
    });
    progress(`workload running: ${workload.acknowledged.length} writes acknowledged`);
    const faultAt = Date.now();
    const fault = await injectFault(ctx, options.fault, node ?? options.target);
    progress(`fault: ${fault.description}`);
    if (probe) {
      probing = (async () => {
        for (let id = 1; !stopProbe; id++) {
          if (await probe.tryWrite(id)) probeAccepted.push(Date.now());
          await delay(100); // the probe's pace, not synchronization
        }
      })();
    }
    let promotedAt: number | undefined;
    const watchUntil = faultAt + options.durationMs;
    while (Date.now() < watchUntil) {
      const now = await detailOf(broker, options.instance).catch(() => undefined);
      if (promotedAt === undefined && now?.primary && now.primary.epoch > (before.primary?.epoch ?? 0)) {
        promotedAt = Date.now();
        progress(
          `new primary on ${now.primary.node} (epoch ${now.primary.epoch}) after ${((promotedAt - faultAt) / 1000).toFixed(2)} s`,
        );
      }
      await delay(200); // sampling the promotion while the fault lasts
    }
    stopProbe = true;
    await probing;
    await probe?.close();
    progress('healing');
    await fault.heal();
    const healedAt = Date.now();
    const after = await waitFor(
      async () => {
        const detail = await detailOf(broker, options.instance);
        if (promotedAt === undefined && detail.primary && detail.primary.epoch > (before.primary?.epoch ?? 0)) {
          promotedAt = Date.now();
        }
        return whole(detail) ? detail : undefined;
      },
      { description: `${before.name} back to full strength`, timeoutMs: options.recoveryTimeoutMs, intervalMs: 250 },
    );
    progress(`back to full strength ${((Date.now() - healedAt) / 1000).toFixed(1)} s after the heal`);
    if (ctx.local) await etcdWhole(ctx.local, options.recoveryTimeoutMs, progress);
    const recorded = await promotionEventAt(broker, before.id, faultAt);
    if (recorded !== undefined) promotedAt = Math.min(recorded, promotedAt ?? recorded);
    await workload.stop();
    const stoppedAt = Date.now();
    // A restarted router binds its route ports a moment after `sf up` returns.
    const readBack = await waitFor(() => workload.readBack().catch(() => undefined), {
      description: `reading ${before.name}'s writes back through the router`,
      timeoutMs: 60_000,
      intervalMs: 500,
    });
    const result = verdict(
      {
        sent: workload.sent,
        acknowledged: workload.acknowledged,
        refused: workload.refused,
        readBack,
        oldPrimaryAcceptedAt: probeAccepted,
        promotedAt,
        faultAt,
        stoppedAt,
      },
      durability,
    );
    return {
      instance: before.name,
      service: before.service,
      durability,
      fault: fault.description,
      target: node ?? options.target,
      epochBefore: before.primary?.epoch ?? 0,
      epochAfter: after.primary?.epoch ?? 0,
      promotedAfterMs: promotedAt === undefined ? null : promotedAt - faultAt,
      recoveredAfterMs: Date.now() - faultAt,
      sent: workload.sent.length,
      verdict: result,
      lastErrors: workload.errors.slice(-3).map((e) => e.message),
    };
  } finally {
    stopProbe = true;
    await probing?.catch(() => undefined);
    await workload.stop().catch(() => undefined);
    await workload.cleanUp().catch(() => undefined);
    await deleteKeyOf(broker, before, keyName).catch((error: Error) =>
      progress(
        `could not delete the round's key ${keyName} (${error.message}): \`sf delete-service-key ${before.name} ${keyName}\``,
      ),
    );
  }
}
