import type { Scorer } from '../types.js';
import { binPack } from './bin-pack.js';
import { leastAllocated } from './least-allocated.js';
import { volumeLocality } from './volume-locality.js';
import { zoneSpread } from './zone-spread.js';

export { binPack, leastAllocated, volumeLocality, zoneSpread };

export interface ScoreWeights {
  /** @default 1 */
  leastAllocated: number;
  /** @default 0 */
  binPack: number;
  /** @default 1 */
  zoneSpread: number;
  /** @default 2 */
  volumeLocality: number;
}

export interface WeightedScorer {
  scorer: Scorer;
  weight: number;
}

export const defaultScoreWeights: Readonly<ScoreWeights> = Object.freeze({
  leastAllocated: 1,
  binPack: 0,
  zoneSpread: 1,
  volumeLocality: 2,
});

const scorers: Record<keyof ScoreWeights, Scorer> = { leastAllocated, binPack, zoneSpread, volumeLocality };

/** The scorers with a weight above zero. */
export function weightedScorers(weights: Readonly<ScoreWeights> = defaultScoreWeights): WeightedScorer[] {
  return (Object.keys(scorers) as Array<keyof ScoreWeights>)
    .filter((name) => weights[name] > 0)
    .map((name) => ({ scorer: scorers[name], weight: weights[name] }));
}
