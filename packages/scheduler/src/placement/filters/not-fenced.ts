import type { Filter } from '../types.js';

const blocking: Record<string, string> = {
  fencing: 'being fenced',
  fenced: 'fenced',
  failed: 'fencing failed; the node is in doubt',
};

/**
 * A node that is being fenced, is fenced, or whose fencing failed takes no replica: its
 * state is unknown or it is powered off until an operator unfences it.
 */
export const notFenced: Filter = (_replica, { fence }) => (fence ? blocking[fence.state] : undefined);
