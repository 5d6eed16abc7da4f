import { type Scorer, zoneOf } from '../types.js';

/** What a node without a zone label scores: neither preferred nor avoided. */
const unzoned = 50;

/**
 * Keeps zones evenly loaded: prefers nodes in the zone holding the fewest replicas, so a
 * zone's loss takes as little as possible with it. (Two replicas of one instance never
 * share a zone anyway: that is the zone anti-affinity filter.)
 */
export const zoneSpread: Scorer = (_replica, { node }, { zoneLoad }) => {
  const zone = zoneOf(node);
  if (zone === undefined) return unzoned;
  let max = 0;
  for (const load of zoneLoad.values()) max = Math.max(max, load);
  if (max === 0) return 100;
  return 100 * (1 - (zoneLoad.get(zone) ?? 0) / max);
};
