import { formatCpu, formatMb } from '../format.js';
import type { Filter } from '../types.js';

/** The node has room for the replica's cpu, memory and disk (I5). */
export const fitsCapacity: Filter = (replica, { node, allocated }) => {
  const want = replica.resources;
  const cap = node.capacity;
  // The hot path of every placement: compare without building objects.
  const cpu = allocated.cpuMillis + want.cpuMillis <= cap.cpuMillis;
  const memory = allocated.memoryMb + want.memoryMb <= cap.memoryMb;
  const disk = allocated.diskMb + want.diskMb <= cap.diskMb;
  if (cpu && memory && disk) return undefined;
  const short: string[] = [];
  if (!cpu) short.push(formatCpu(want.cpuMillis));
  if (!memory) short.push(`${formatMb(want.memoryMb)} memory`);
  if (!disk) short.push(`${formatMb(want.diskMb)} disk`);
  return `not enough free ${short.join(', ')}`;
};
