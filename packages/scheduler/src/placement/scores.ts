import type { Resources } from '@service-foundry/core';
import type { Scorer } from './types.js';

function fractionFree(capacity: Resources, allocated: Resources, request: Resources): number {
  const dims: Array<keyof Resources> = ['cpuMillis', 'memoryMb', 'diskMb'];
  let sum = 0;
  for (const dim of dims) {
    const cap = capacity[dim];
    sum += cap > 0 ? (cap - allocated[dim] - request[dim]) / cap : 0;
  }
  return sum / dims.length;
}

/** Spreads load: prefers the node with the most capacity left after placing the replica. */
export const leastAllocated: Scorer = (replica, { node, allocated }) =>
  Math.max(0, 100 * fractionFree(node.capacity, allocated, replica.resources));
