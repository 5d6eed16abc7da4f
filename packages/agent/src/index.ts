export { type AgentDeps, type RunningAgent, startAgent } from './agent.js';
export { type AgentConfig, type AgentOptions, compileAgentConfig, defaultSelfFenceMarginMs } from './config.js';
export {
  labelKeys,
  loadContainerTls,
  pidsLimit,
  replicaResourceName,
  replicaSecrets,
  secretFilesArchive,
  tlsEnv,
} from './container-spec.js';
export { replicaVolumeName } from './replica-volumes.js';
