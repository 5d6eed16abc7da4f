export {
  defaultAgentDirs,
  projectAgentDir,
  type ResolvedAgent,
  resolveAgent,
  simAgentPath,
} from './agent-path.js';
export { type AgentRun, type AgentRunRequest, runAgentOnce } from './agent-process.js';
export {
  deviceLabel,
  type FenceConfirm,
  type FenceDeviceConfig,
  type FenceDevicesInput,
  type FenceDevicesRecord,
  type FenceLevelConfig,
  type FenceOptionValue,
  fenceDevicesCodec,
  keepRedactedSecrets,
  maxDevicesPerLevel,
  maxLevels,
  parseFenceDevices,
  parseFenceDevicesRecord,
  redactFenceDevices,
} from './device-config.js';
export {
  type DeviceRunContext,
  type DeviceStep,
  encodeAgentOptions,
  type FenceAction,
  type PowerState,
  runDeviceAction,
} from './device-runner.js';
export { FenceAgentMetadataError, FenceAgentRefusedError, UnknownNodeError } from './errors.js';
export { FenceAgents, type FenceAgentsOptions } from './fence-agents.js';
export { fenceHistoryCodec, storedFenceCodec } from './fence-records.js';
export type { FenceRequest, FenceResult, UnfenceRequest, UnfenceResult } from './fence-request.js';
export {
  decideFence,
  decideUnfence,
  type FenceDecision,
  type StoredFenceRecord,
  staleAtMs,
  stateAfterFencing,
  stateAfterUnfencing,
  type UnfenceDecision,
} from './fence-state-machine.js';
export { FenceStore } from './fence-store.js';
export { controllerFencer, type NodeFencer } from './fencer.js';
export { Fencing, type FencingDeps, fenceNode, unfenceNode } from './fencing.js';
export type { FenceHistoryAction, FenceHistoryEntry, FenceHistoryResult } from './history.js';
export { isKnownNode, requireKnownNode } from './known-node.js';
export {
  type DeviceOutcome,
  type LevelOutcome,
  type LevelsResult,
  powerOffAndConfirm,
  powerOn,
  runFenceLevels,
  runUnfenceLevel,
} from './levels.js';
export { type AgentMetadata, type AgentParameter, parseAgentMetadata } from './metadata-xml.js';
export { checkAgentOptions, defaultRefusedOptions, type OptionProblem } from './option-check.js';
export { compileFencingOptions, type FencingOptions } from './options.js';
export { isSecretOption, redactionMarker, redactOptions, redactText, secretValues } from './secrets.js';
export { mountsUnder, unmountUnder } from './sim/mounts.js';
export { namespaceProcesses, netnsInode, netnsPath } from './sim/namespace-processes.js';
export {
  type BootProcess,
  type BootResult,
  bootNode,
  bootProcessPid,
  type NodeBootFile,
  nodePowerState,
  powerOffNode,
  readBootFile,
} from './sim/node-boot.js';
export { deviceWorstCaseMs, worstCaseMs } from './worst-case.js';
