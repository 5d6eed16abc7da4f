export { type CheckOptions, checkPlacements, type PlacementViolation } from './checker.js';
export { ClusterState } from './cluster-state.js';
export { compileSchedulerConfig, type SchedulerConfig, schedulerOptionsFrom } from './config.js';
export { Controller } from './controller.js';
export { Ownership, type SchedulerMode } from './ownership.js';
export {
  defaultFilters,
  fitsCapacity,
  nodeAlive,
  nodeAntiAffinity,
  nodeLocalFilters,
  notFenced,
  requiredLabels,
  schedulable,
  zoneAntiAffinity,
} from './placement/filters/index.js';
export { NodeView, withReplica } from './placement/node-view.js';
export { describeRejections, pickNode, rankNodes } from './placement/rank.js';
export {
  binPack,
  defaultScoreWeights,
  leastAllocated,
  type ScoreWeights,
  volumeLocality,
  weightedScorers,
  zoneSpread,
} from './placement/scores/index.js';
export type {
  Filter,
  NodeCandidate,
  PendingReplica,
  PlacementContext,
  Scorer,
  SiblingPlacement,
} from './placement/types.js';
export { release } from './reserve.js';
export { Scheduler, type SchedulerOptions, type SchedulerPassResult, type SchedulerStats } from './scheduler.js';
export { type RunningScheduler, startScheduler } from './service.js';
export { commitPlacements, type NodeCommit, type ReplicaToCommit } from './transactions/commit-placements.js';
export { type LockedNode, lockNodes, releaseNodeLocks } from './transactions/lock-nodes.js';
export { collectWork, waitingForFence } from './work-list.js';
