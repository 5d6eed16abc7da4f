import type { Filter } from '../types.js';

/** Operators stop new placements on a node with `sf node cordon` or `sf node drain`. */
export const schedulable: Filter = (_replica, { control }) => {
  if (control?.draining) return 'draining';
  if (control?.cordoned) return 'cordoned';
  return undefined;
};
