import type { Filter } from '../types.js';

/** No two replicas of one instance share a node (I5), judged on the node's own ledger. */
export const nodeAntiAffinity: Filter = (replica, { allocation, instanceIds }) => {
  if (instanceIds.has(replica.instanceId)) {
    for (const held of Object.values(allocation.replicas)) {
      if (held.instanceId === replica.instanceId) return `already holds replica ${held.ordinal} of this instance`;
    }
  }
  for (const sibling of replica.siblings ?? []) {
    if (sibling.node === allocation.node) return `already holds replica ${sibling.ordinal} of this instance`;
  }
  return undefined;
};
