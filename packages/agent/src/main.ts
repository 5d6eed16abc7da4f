#!/usr/bin/env node
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { createLogger } from '@service-foundry/core';
import { startAgent } from './agent.js';
import { type AgentConfig, compileAgentConfig } from './config.js';

const usage = 'usage: node packages/agent/dist/main.js --config <agent.json>';

/** Exit code 2 means "fix your invocation or config file": nothing was started. */
function fail(message: string, exitCode = 2): never {
  process.stderr.write(`sf-agent: ${message}\n`);
  process.exit(exitCode);
}

async function loadConfig(argv: string[]): Promise<Readonly<AgentConfig>> {
  let file: string | undefined;
  try {
    file = parseArgs({ args: argv, options: { config: { type: 'string' } }, strict: true }).values.config;
  } catch (error) {
    fail(`${(error as Error).message}; ${usage}`);
  }
  if (!file) fail(`missing --config; ${usage}`);
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    fail(`cannot read config file ${file}: ${(error as Error).message}`);
  }
  try {
    return compileAgentConfig(raw);
  } catch (error) {
    fail(`${file}: ${(error as Error).message}`);
  }
}

async function main(): Promise<void> {
  const config = await loadConfig(process.argv.slice(2));
  const log = createLogger({ name: 'agent' });
  let agent: Awaited<ReturnType<typeof startAgent>>;
  try {
    agent = await startAgent(config, { log });
  } catch (error) {
    log.error({ err: error }, 'agent failed to start');
    fail(`cannot start: ${(error as Error).message}`, 1);
  }
  log.info({ node: agent.node, address: config.address, keyspaceRoot: config.keyspaceRoot }, 'ready');
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    agent.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        log.error({ err: error }, 'stop failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

main().catch((error: unknown) => fail(`unexpected error: ${(error as Error).stack ?? String(error)}`, 1));
