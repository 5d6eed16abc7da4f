import { readFile } from 'node:fs/promises';
import { ErrorCodes, isSfError } from './errors.js';
import { createLogger, type Logger } from './logger.js';

export interface Stoppable {
  stop(): Promise<void>;
}

/**
 * The `main` of every long-running component: `<name> --config FILE.json`. A missing or
 * invalid config exits 2 with one clear line on stderr; SIGTERM/SIGINT stop cleanly, exit 0.
 */
export async function runComponent(
  name: string,
  start: (config: unknown, log: Logger) => Promise<Stoppable>,
): Promise<void> {
  const index = process.argv.indexOf('--config');
  const file = index > 0 ? process.argv[index + 1] : undefined;
  if (!file) {
    process.stderr.write(`usage: ${name} --config FILE.json\n`);
    process.exit(2);
  }
  let config: unknown;
  try {
    config = JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    process.stderr.write(`${name}: cannot read config ${file}: ${(error as Error).message}\n`);
    process.exit(2);
  }
  const log = createLogger({ name });
  let running: Stoppable;
  try {
    running = await start(config, log);
  } catch (error) {
    process.stderr.write(`${name}: ${(error as Error).message}\n`);
    process.exit(isSfError(error) && error.code === ErrorCodes.invalidConfig ? 2 : 1);
  }
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, `${name} stopping`);
    running.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        log.error({ err: error }, `${name} did not stop cleanly`);
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}
