import { type ChildProcess, spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { waitFor } from '@service-foundry/core';

const mainJs = resolve(import.meta.dirname, '..', 'dist', 'main.js');

/** A scheduler in its own process (`node packages/scheduler/dist/main.js --config FILE`). */
export class ChildScheduler {
  output = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  private constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    child.stdout?.on('data', (chunk: Buffer) => {
      this.output += chunk.toString();
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      this.output += chunk.toString();
    });
    this.exited = new Promise((done) => child.once('exit', (code, signal) => done({ code, signal })));
  }

  static async start(dir: string, name: string, config: Record<string, unknown>): Promise<ChildScheduler> {
    const file = join(dir, `${name}.json`);
    await writeFile(file, JSON.stringify({ ...config, name }));
    const child = spawn(process.execPath, [mainJs, '--config', file], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, SF_LOG_LEVEL: process.env.SF_TEST_CHILD_LOG_LEVEL ?? 'debug' },
    });
    const scheduler = new ChildScheduler(name, child);
    await waitFor(() => scheduler.output.includes('"msg":"scheduler ready"'), {
      description: `${name} ready`,
      timeoutMs: 15_000,
    });
    return scheduler;
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  /** The process state letter from /proc: `T` when stopped, `S`/`R` when running. */
  async state(): Promise<string> {
    const stat = await readFile(`/proc/${this.pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  }

  /** Log lines (pino JSON) whose message is `msg`. */
  logs(msg: string): Array<Record<string, unknown>> {
    return this.output
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.msg === msg);
  }

  /** SIGTERM (after SIGCONT, in case it is stopped); resolves with the exit code. */
  async stop(): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGCONT');
      this.child.kill('SIGTERM');
    }
    return (await this.exited).code;
  }

  async kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.exited;
  }
}
