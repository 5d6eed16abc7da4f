import { type Filter, zoneOf } from '../types.js';

/**
 * No two replicas of one instance share a zone, where zones exist (I5): a node without a
 * `zone` label, or a sibling on such a node, does not count.
 */
export const zoneAntiAffinity: Filter = (replica, { node }) => {
  const zone = zoneOf(node);
  if (zone === undefined) return undefined;
  const twin = replica.siblings?.find((s) => s.zone === zone);
  return twin ? `zone ${zone} already holds replica ${twin.ordinal} of this instance` : undefined;
};
