import type { AllocatedReplica, ContainerLimits, NodeAllocation, Resources } from './records/index.js';

export const noResources: Resources = Object.freeze({ cpuMillis: 0, memoryMb: 0, diskMb: 0 });

export function addResources(a: Resources, b: Resources): Resources {
  return { cpuMillis: a.cpuMillis + b.cpuMillis, memoryMb: a.memoryMb + b.memoryMb, diskMb: a.diskMb + b.diskMb };
}

export function fitsWithin(request: Resources, free: Resources): boolean {
  return request.cpuMillis <= free.cpuMillis && request.memoryMb <= free.memoryMb && request.diskMb <= free.diskMb;
}

export function sumAllocated(replicas: Record<string, AllocatedReplica>): Resources {
  let total = noResources;
  for (const replica of Object.values(replicas)) total = addResources(total, replica.resources);
  return total;
}

export function sameResources(a: Resources, b: Resources): boolean {
  return a.cpuMillis === b.cpuMillis && a.memoryMb === b.memoryMb && a.diskMb === b.diskMb;
}

/** The larger of each dimension: what a node must hold while a replica moves between two sizes. */
export function largerOfEach(a: Resources, b: Resources): Resources {
  return {
    cpuMillis: Math.max(a.cpuMillis, b.cpuMillis),
    memoryMb: Math.max(a.memoryMb, b.memoryMb),
    diskMb: Math.max(a.diskMb, b.diskMb),
  };
}

export function sameLimits(a: ContainerLimits | undefined, b: ContainerLimits | undefined): boolean {
  return a?.cpuMillis === b?.cpuMillis && a?.memoryMb === b?.memoryMb;
}

/** `500m CPU, 512 MB memory, 1024 MB disk`: a replica's size as messages say it. */
export function formatResources(r: Resources): string {
  return `${r.cpuMillis}m CPU, ${r.memoryMb} MB memory, ${r.diskMb} MB disk`;
}

/**
 * A resize in place of one replica (`<instanceId>/<ordinal>` in the node's ledger) from
 * `current` to `want`: what the ledger must hold meanwhile (`hold`: the larger of what it
 * holds now, else `current`, and `want`, dimension by dimension), and what the node lacks
 * to hold it (`short`: one phrase per short dimension, none when it fits).
 */
export function resizeShortfall(
  ledger: NodeAllocation | undefined,
  capacity: Resources,
  replicaKey: string,
  current: Resources,
  want: Resources,
): { hold: Resources; short: string[] } {
  const hold = largerOfEach(ledger?.replicas[replicaKey]?.resources ?? current, want);
  const others = Object.fromEntries(Object.entries(ledger?.replicas ?? {}).filter(([key]) => key !== replicaKey));
  const used = sumAllocated(others);
  const short: string[] = [];
  const check = (wanted: number, capacityOf: number, usedOf: number, unit: string) => {
    const free = Math.max(0, capacityOf - usedOf);
    if (wanted > free) short.push(`${wanted} ${unit} asked, ${free} free`);
  };
  check(hold.cpuMillis, capacity.cpuMillis, used.cpuMillis, 'millicores CPU');
  check(hold.memoryMb, capacity.memoryMb, used.memoryMb, 'MB memory');
  check(hold.diskMb, capacity.diskMb, used.diskMb, 'MB disk');
  return { hold, short };
}
