import type { Filter } from '../types.js';
import { fitsCapacity } from './fits-capacity.js';
import { nodeAlive } from './node-alive.js';
import { nodeAntiAffinity } from './node-anti-affinity.js';
import { notFenced } from './not-fenced.js';
import { requiredLabels } from './required-labels.js';
import { schedulable } from './schedulable.js';
import { zoneAntiAffinity } from './zone-anti-affinity.js';

export { fitsCapacity, nodeAlive, nodeAntiAffinity, notFenced, requiredLabels, schedulable, zoneAntiAffinity };

/**
 * Cheapest and most telling first: the first filter that rejects a node gives the reason
 * users see, so node-level states come before per-replica rules.
 */
export const defaultFilters: readonly Filter[] = [
  nodeAlive,
  notFenced,
  schedulable,
  requiredLabels,
  nodeAntiAffinity,
  zoneAntiAffinity,
  fitsCapacity,
];

/**
 * The filters that depend only on one node and its ledger: re-checked under the node's
 * lock against what etcd returned with the lock. Zone rules span nodes; the commit
 * guards them by comparing the sibling placements' revisions instead.
 */
export const nodeLocalFilters: readonly Filter[] = [
  nodeAlive,
  notFenced,
  schedulable,
  requiredLabels,
  nodeAntiAffinity,
  fitsCapacity,
];
