import type { Filter } from '../types.js';

/** The node's agent still renews its lease: a node without one cannot start anything. */
export const nodeAlive: Filter = (_replica, { alive }) => (alive ? undefined : 'not responding (node lease gone)');
