export { type AgentDeps, type RunningAgent, startAgent } from './agent.js';
export { type AgentConfig, type AgentOptions, compileAgentConfig } from './config.js';
export { labelKeys, replicaResourceName } from './container-spec.js';
