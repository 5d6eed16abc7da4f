import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { ErrorCodes, isSfError } from './errors.js';
import { createLogger, type Logger } from './logger.js';

export interface Stoppable {
  stop(): Promise<void>;
}

/** Exit code for "fix the command line or the config file": nothing was started. */
const usageExitCode = 2;

/** One line on stderr, then exit: the whole report of a component that did not start. */
function exitWith(name: string, message: string, code: number): never {
  process.stderr.write(`${name}: ${message}\n`);
  process.exit(code);
}

/** The config file named by `--config`, parsed as JSON; exits 2 with one line when it cannot be. */
async function readConfigFile(name: string, argv: string[]): Promise<{ file: string; config: unknown }> {
  const usage = `usage: ${name} --config FILE.json`;
  let file: string | undefined;
  try {
    file = parseArgs({ args: argv, options: { config: { type: 'string' } }, strict: true }).values.config;
  } catch (error) {
    exitWith(name, `${(error as Error).message}; ${usage}`, usageExitCode);
  }
  if (!file) exitWith(name, `missing --config; ${usage}`, usageExitCode);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    exitWith(name, `cannot read config file ${file}: ${reason}`, usageExitCode);
  }
  try {
    return { file, config: JSON.parse(text) };
  } catch (error) {
    exitWith(name, `cannot read config file ${file}: not valid JSON: ${(error as Error).message}`, usageExitCode);
  }
}

/**
 * The `main` of every long-running component: `<name> --config FILE.json`. A bad command
 * line, a missing, unreadable or invalid config exits 2 with one clear line on stderr
 * (naming the file); a failure to start exits 1 the same way; SIGTERM/SIGINT stop
 * cleanly, exit 0.
 */
export async function runComponent(
  name: string,
  start: (config: unknown, log: Logger) => Promise<Stoppable>,
): Promise<void> {
  const { file, config } = await readConfigFile(name, process.argv.slice(2));
  const log = createLogger({ name });
  let running: Stoppable;
  try {
    running = await start(config, log);
  } catch (error) {
    const invalidConfig = isSfError(error) && error.code === ErrorCodes.invalidConfig;
    const message = (error as Error).message;
    exitWith(name, invalidConfig ? `${file}: ${message}` : message, invalidConfig ? usageExitCode : 1);
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
