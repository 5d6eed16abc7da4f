import { type InstanceRecord, type Resources, type SchedulingStatusRecord, sumAllocated } from '@service-foundry/core';
import type { ClusterState } from '../cluster-state.js';
import { formatCpu, formatMb } from '../placement/format.js';

/** How long no node may have room for a provision before it fails (see ControllerOptions). */
export const defaultNoRoomGraceMs = 10_000;

/**
 * Whether the scheduler reports a provision that cannot fit: an instance that was never
 * ready (phase `provisioning`, a `provision` operation in progress) with a replica no
 * live node has room for. A plan without streaming standbys is ready once its first
 * replica serves, so there only an instance with nothing placed counts. An instance that
 * was ready before never fails for this: its pending replicas wait for room.
 */
export function provisionLacksRoom(
  instance: InstanceRecord,
  status: SchedulingStatusRecord | undefined,
  placed: number,
  replicated: boolean,
): boolean {
  const { phase, operation } = instance;
  if (phase !== 'provisioning' || operation.type !== 'provision' || operation.state !== 'in progress') return false;
  if (!status?.pending.some((p) => p.noRoom)) return false;
  return replicated || placed === 0;
}

function describe(resources: Resources): string {
  const nonNegative = (n: number) => Math.max(0, n);
  return (
    `${formatCpu(nonNegative(resources.cpuMillis))}, ${formatMb(nonNegative(resources.memoryMb))} memory, ` +
    `${formatMb(nonNegative(resources.diskMb))} disk`
  );
}

/** How close `free` comes to `need`: the smallest share of any resource (1 or more: it fits). */
function closeness(free: Resources, need: Resources): number {
  const share = (have: number, want: number) => (want <= 0 ? Number.POSITIVE_INFINITY : have / want);
  return Math.min(
    share(free.cpuMillis, need.cpuMillis),
    share(free.memoryMb, need.memoryMb),
    share(free.diskMb, need.diskMb),
  );
}

/**
 * Why the instance cannot be placed, from the controller's own view of nodes and their
 * allocations: "no node has room for "db": each replica needs …; the most free node, n2,
 * has … free". Undefined when a live node has room after all (the scheduler's report is
 * older than that view) or when there are no nodes.
 */
export function noRoomReason(instance: InstanceRecord, state: ClusterState): string | undefined {
  const need = instance.resources;
  let best: { name: string; free: Resources; closeness: number } | undefined;
  for (const { value: node } of state.nodes.items.values()) {
    const ledger = state.allocations.items.get(state.keys.allocation(node.name))?.value;
    const used = sumAllocated(ledger?.replicas ?? {});
    const free: Resources = {
      cpuMillis: node.capacity.cpuMillis - used.cpuMillis,
      memoryMb: node.capacity.memoryMb - used.memoryMb,
      diskMb: node.capacity.diskMb - used.diskMb,
    };
    const close = closeness(free, need);
    if (close >= 1) return undefined;
    if (!best || close > best.closeness || (close === best.closeness && node.name < best.name)) {
      best = { name: node.name, free, closeness: close };
    }
  }
  if (!best) return undefined;
  return (
    `no node has room for ${JSON.stringify(instance.name)}: each replica needs ${describe(need)}; ` +
    `the most free node, ${best.name}, has ${describe(best.free)} free`
  );
}
