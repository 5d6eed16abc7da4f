import type { Scorer } from '../types.js';

/**
 * Prefers a node that already holds a copy of the replica's volume. The signal is the
 * placement history (`PlacementRecord.previousNodes`): nodes this replica ran on before it
 * was re-placed, whose volume stays until their agent removes it.
 */
export const volumeLocality: Scorer = (replica, { node }) => (replica.previousNodes?.includes(node.name) ? 100 : 0);
