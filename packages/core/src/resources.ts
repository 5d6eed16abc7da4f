import type { AllocatedReplica, Resources } from './records/index.js';

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
