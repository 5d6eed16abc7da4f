#!/usr/bin/env node
import { runComponent } from '@service-foundry/core';
import { startScheduler } from './service.js';

await runComponent('scheduler', (config, log) => startScheduler(config, { log }));
