#!/usr/bin/env node
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { createLogger } from '@service-foundry/core';
import { compileRouterConfig, type RouterConfig } from './config.js';
import { startRouter } from './router.js';

const usage = 'usage: node packages/router/dist/main.js --config <file.json>';

/** Bad invocations and config files end here: one line on stderr, exit code 2. */
function exitWithUsageError(message: string): never {
  process.stderr.write(`router: ${message}\n`);
  process.exit(2);
}

async function loadConfig(argv: string[]): Promise<RouterConfig> {
  let file: string | undefined;
  try {
    file = parseArgs({ args: argv, options: { config: { type: 'string' } }, strict: true }).values.config;
  } catch (error) {
    exitWithUsageError(`${(error as Error).message}; ${usage}`);
  }
  if (!file) exitWithUsageError(`--config is required; ${usage}`);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    exitWithUsageError(
      `cannot read config file ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    exitWithUsageError(`config file ${file} is not valid JSON: ${(error as Error).message}`);
  }
  try {
    return compileRouterConfig(parsed);
  } catch (error) {
    exitWithUsageError(`${file}: ${(error as Error).message}`);
  }
}

async function main(): Promise<void> {
  const config = await loadConfig(process.argv.slice(2));
  const log = createLogger({ name: 'router' });
  let router: Awaited<ReturnType<typeof startRouter>>;
  try {
    router = await startRouter(config, { log });
  } catch (error) {
    log.fatal({ err: error }, 'router failed to start');
    process.exit(1);
  }
  log.info({ httpPort: router.httpPort, listenHost: config.listenHost, keyspaceRoot: config.keyspaceRoot }, 'ready');

  let stopping = false;
  const shutdown = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    router.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        log.error({ err: error }, 'stop failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
}

main().catch((error: unknown) => {
  process.stderr.write(`router: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
