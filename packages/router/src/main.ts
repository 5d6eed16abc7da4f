#!/usr/bin/env node
import { runComponent } from '@service-foundry/core';
import { compileRouterConfig } from './config.js';
import { startRouter } from './router.js';

await runComponent('router', async (input, log) => {
  const config = compileRouterConfig(input);
  const router = await startRouter(config, { log });
  log.info({ httpPort: router.httpPort, listenHost: config.listenHost, keyspaceRoot: config.keyspaceRoot }, 'ready');
  return router;
});
