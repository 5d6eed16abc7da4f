import { fitsWithin, subtractResources } from '@service-foundry/core';
import type { Filter } from './types.js';

/** The node has room for the replica's cpu, memory and disk (I5). */
export const fitsCapacity: Filter = (replica, { node, allocated }) => {
  const free = subtractResources(node.capacity, allocated);
  if (fitsWithin(replica.resources, free)) return undefined;
  const short: string[] = [];
  if (replica.resources.cpuMillis > free.cpuMillis) short.push(`${replica.resources.cpuMillis}m cpu`);
  if (replica.resources.memoryMb > free.memoryMb) short.push(`${replica.resources.memoryMb} MB memory`);
  if (replica.resources.diskMb > free.diskMb) short.push(`${replica.resources.diskMb} MB disk`);
  return `not enough free ${short.join(', ')}`;
};

/** No two replicas of one instance share a node (I5). */
export const spreadsReplicas: Filter = (replica, { allocation }) => {
  for (const held of Object.values(allocation.replicas)) {
    if (held.instanceId === replica.instanceId) return `already holds replica ${held.ordinal} of this instance`;
  }
  return undefined;
};

export const defaultFilters: readonly Filter[] = [fitsCapacity, spreadsReplicas];
