#!/usr/bin/env node
import { runComponent } from '@service-foundry/core';
import { startBroker } from './server.js';

await runComponent('broker', (config, log) => startBroker(config, { log }));
