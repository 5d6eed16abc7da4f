import type { Resources } from '@service-foundry/core';

const dimensions: ReadonlyArray<keyof Resources> = ['cpuMillis', 'memoryMb', 'diskMb'];

/** Mean over cpu, memory and disk of the share left free once `request` is added. */
export function fractionFreeAfter(capacity: Resources, allocated: Resources, request: Resources): number {
  let sum = 0;
  for (const dim of dimensions) {
    const cap = capacity[dim];
    sum += cap > 0 ? (cap - allocated[dim] - request[dim]) / cap : 0;
  }
  return Math.min(1, Math.max(0, sum / dimensions.length));
}
