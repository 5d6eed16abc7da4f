#!/usr/bin/env node
// First: it must run before the first asynchronous file call (thread-pool.ts).
import './thread-pool.js';
import { runComponent } from '@service-foundry/core';
import { startAgent } from './agent.js';
import { compileAgentConfig } from './config.js';

await runComponent('agent', async (config, log) => {
  const agent = await startAgent(compileAgentConfig(config), { log });
  log.info({ node: agent.node, address: agent.config.address, keyspaceRoot: agent.config.keyspaceRoot }, 'ready');
  return agent;
});
