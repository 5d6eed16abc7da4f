import type { Scorer } from '../types.js';
import { fractionFreeAfter } from './fraction-free.js';

/** Spreads load: prefers the node with the most capacity left after placing the replica. */
export const leastAllocated: Scorer = (replica, { node, allocated }) =>
  100 * fractionFreeAfter(node.capacity, allocated, replica.resources);
