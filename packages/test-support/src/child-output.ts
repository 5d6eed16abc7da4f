import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A child process whose output the test reads while it runs and after it ended. */
export interface WatchedProcess {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** stdout and stderr interleaved in the order they arrived. */
  output(): string;
  /** Settles once the process exited and its output is complete; rejects if it could not start. */
  exited: Promise<Exit>;
  /** True until the process has exited. */
  running(): boolean;
}

/**
 * Spawns `command` with stdout and stderr collected (stdin ignored unless `options.stdio`
 * says otherwise). The caller ends what it starts: `child.kill()` in its cleanup.
 */
export function spawnWatched(command: string, args: readonly string[], options: SpawnOptions = {}): WatchedProcess {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  let stdout = '';
  let stderr = '';
  let output = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    output += chunk;
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
    output += chunk;
  });
  const exited = new Promise<Exit>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  // A caller that only kills the process must not see an unhandled rejection.
  exited.catch(() => undefined);
  return {
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    output: () => output,
    exited,
    running: () => child.exitCode === null && child.signalCode === null,
  };
}
