import { readdir, readFile } from 'node:fs/promises';

/** A signal to a process that may have exited meanwhile (then there is nothing to signal). */
export function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

/** Processes whose command line names `path` (a node's dockerd, even once its namespace is gone). */
export async function processesNaming(path: string): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^[0-9]+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (
      cmdline.split('\0').some((arg) => arg === path || arg.startsWith(`${path}/`) || arg === `unix://${path}.sock`)
    ) {
      found.push(Number(entry));
    }
  }
  return found;
}

/** In state T: stopped by SIGSTOP (a paused agent). */
export async function isStopped(pid: number): Promise<boolean> {
  const text = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return text.slice(text.lastIndexOf(')') + 2).startsWith('T');
}
