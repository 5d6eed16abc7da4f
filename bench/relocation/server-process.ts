import { type ChildProcess, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface ServerProcess {
  url: string;
  /** User + system CPU seconds the process used so far (all its threads). */
  cpuSeconds(): Promise<number>;
  stop(): Promise<void>;
}

/** Clock ticks per second of /proc/PID/stat (USER_HZ; 100 on every Linux this runs on). */
const ticksPerSecond = 100;

const here = dirname(fileURLToPath(import.meta.url));

/** Starts volume-server-process.ts serving `dir` as volume `bench` in a child process. */
export async function startServerProcess(dir: string, secret: string): Promise<ServerProcess> {
  const child: ChildProcess = spawn(
    process.execPath,
    ['--import', 'tsx', join(here, 'volume-server-process.ts'), dir],
    {
      env: { ...process.env, SF_BENCH_SECRET: secret },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const url = await new Promise<string>((resolve, reject) => {
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const match = /ready (\S+)/.exec(output);
      if (match?.[1]) resolve(match[1]);
    });
    child.on('exit', (code) => reject(new Error(`volume server exited with ${code}`)));
    child.on('error', reject);
  });
  return {
    url,
    cpuSeconds: async () => {
      const stat = await readFile(`/proc/${child.pid}/stat`, 'utf8');
      // Fields after the command name (which may hold spaces) start at ") ".
      const fields = stat.slice(stat.lastIndexOf(') ') + 2).split(' ');
      return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}
