import {
  formatResources,
  type IoPolicy,
  type PlacementRecord,
  sameIo,
  sameLimits,
  sameResources,
} from '@service-foundry/core';
import type { InstanceView } from './topology.js';

/** The next step of an update, as a pure function of the instance's state. */
export type UpdateStep =
  | { kind: 'remove'; placements: PlacementRecord[]; description: string }
  | { kind: 'resize'; ordinals: number[]; description: string }
  | { kind: 'apply-io'; io: IoPolicy; description: string }
  | { kind: 'wait'; description: string }
  | { kind: 'settled' };

/** Replicas at or above the instance's replica count: what a smaller plan gives back. */
export function surplusPlacements(view: InstanceView): PlacementRecord[] {
  return view.placements.filter((p) => p.ordinal >= view.instance.replicas);
}

/**
 * Replica `ordinal` runs in the role the current primary key gives it, at its epoch (0:
 * the bootstrap primary); without native replication, running is enough.
 */
export function runsInRole(view: InstanceView, ordinal: number): boolean {
  const primary = view.primary;
  const status = view.statuses.get(ordinal)?.value;
  if (!primary || status?.state !== 'running') return false;
  if (!view.replicated) return true;
  const epoch = Number(primary.modRevision);
  const role = ordinal === primary.value.ordinal ? 'primary' : 'replica';
  return status.role === role && (status.epoch === epoch || status.epoch === 0);
}

/** How many of the replicas the plan keeps (ordinals below the replica count) run in their role. */
function runningInRole(view: InstanceView): number {
  let running = 0;
  for (let ordinal = 0; ordinal < view.instance.replicas; ordinal++) if (runsInRole(view, ordinal)) running++;
  return running;
}

function sizeText(view: InstanceView): string {
  return formatResources(view.instance.resources);
}

/** Kept replicas whose assignment asks other resources than the instance's (a plan change of size). */
export function replicasToResize(view: InstanceView): number[] {
  const ordinals: number[] = [];
  for (const [ordinal, assignment] of view.assignments) {
    if (ordinal >= view.instance.replicas || assignment.value.desired !== 'running') continue;
    if (!sameResources(assignment.value.resources, view.instance.resources)) ordinals.push(ordinal);
  }
  return ordinals.sort((a, b) => a - b);
}

/** The first kept replica running in its role whose container does not report the instance's limits yet, and why. */
function limitsPending(view: InstanceView): string | undefined {
  const { cpuMillis, memoryMb } = view.instance.resources;
  for (let ordinal = 0; ordinal < view.instance.replicas; ordinal++) {
    const status = view.statuses.get(ordinal)?.value;
    if (!status || !runsInRole(view, ordinal) || sameLimits(status.limits, { cpuMillis, memoryMb })) continue;
    const why = status.message === 'ready' ? 'its agent changes the container in place' : status.message;
    return `replica ${ordinal} on ${status.node} does not run with ${cpuMillis}m CPU, ${memoryMb} MB memory yet: ${why}`;
  }
  return undefined;
}

/**
 * One step of an update in progress. The IO half (every running replica reports the
 * settings in force) is the controller's `settled` check; this decides what a plan
 * change adds before it:
 *
 * | situation                                                        | step                                     |
 * |------------------------------------------------------------------|------------------------------------------|
 * | no primary                                                       | wait (failover or election under way)    |
 * | surplus replicas, the primary among them                         | wait: a switchover must move it first    |
 * | surplus replicas, the primary's IO not yet the instance's        | wait: the relaxed durability first       |
 * | surplus replicas                                                 | remove them                              |
 * | kept replicas whose assignment asks another size than the plan's  | resize them (controller/resize.ts)       |
 * | plan change, fewer kept replicas running than the count          | wait: the new replicas clone             |
 * | a running kept replica without the plan's CPU and memory limits  | wait, with its agent's reason            |
 * | plan change, all running, IO pending                             | apply the pending IO                     |
 * | otherwise                                                        | settled (the ledgers are trimmed first)  |
 *
 * The order keeps every commit flowing: standbys go only after the primary stopped waiting
 * for them, and a synchronous durability comes only after the standbys it waits for run.
 * The primary is never removed, whatever happened since the broker checked.
 */
export function decideUpdate(view: InstanceView, planChange: boolean, pendingIo: IoPolicy | undefined): UpdateStep {
  if (!planChange && !pendingIo) return { kind: 'settled' };
  const primary = view.primary;
  if (!primary) return { kind: 'wait', description: 'waiting for a primary (failover or election under way)' };
  const name = view.instance.name;
  const surplus = surplusPlacements(view);
  if (surplus.length > 0) {
    const primaryOrdinal = primary.value.ordinal;
    if (surplus.some((p) => p.ordinal === primaryOrdinal)) {
      return {
        kind: 'wait',
        description: `the primary is replica ${primaryOrdinal}, which the new plan does not keep; switch over first (sf switchover ${name} --to 0)`,
      };
    }
    const primaryIo = view.statuses.get(primaryOrdinal)?.value.io;
    if (view.replicated && !sameIo(primaryIo, view.instance.io)) {
      return {
        kind: 'wait',
        description: `the primary applies durability ${view.instance.io?.durability ?? 'async'} before its standbys are removed`,
      };
    }
    const ordinals = surplus.map((p) => p.ordinal).join(', ');
    return { kind: 'remove', placements: surplus, description: `removing replica(s) ${ordinals}` };
  }
  const resize = replicasToResize(view);
  if (resize.length > 0) {
    return {
      kind: 'resize',
      ordinals: resize,
      description: `resizing replica(s) ${resize.join(', ')} in place to ${sizeText(view)}`,
    };
  }
  const running = runningInRole(view);
  const replicas = view.instance.replicas;
  if (running < replicas) {
    return { kind: 'wait', description: `${running} of ${replicas} replicas running; the new ones clone the primary` };
  }
  const limits = limitsPending(view);
  if (limits !== undefined) return { kind: 'wait', description: limits };
  if (pendingIo) {
    return {
      kind: 'apply-io',
      io: pendingIo,
      description: `all ${replicas} replicas running; applying durability ${pendingIo.durability}, local_io ${pendingIo.localIo}`,
    };
  }
  return { kind: 'settled' };
}
