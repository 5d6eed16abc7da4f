import type { Scorer } from '../types.js';
import { fractionFreeAfter } from './fraction-free.js';

/**
 * Packs: prefers the node with the least capacity left after placing the replica, so
 * whole nodes stay free for large replicas (Kubernetes' MostAllocated).
 */
export const binPack: Scorer = (replica, { node, allocated }) =>
  100 * (1 - fractionFreeAfter(node.capacity, allocated, replica.resources));
