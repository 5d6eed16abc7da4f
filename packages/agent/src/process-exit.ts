import { readFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';

/** How often /proc is looked at while a stop is under way. */
const pollMs = 10;

/**
 * The start time of host process `pid` while it lives (field 22 of /proc/PID/stat, in clock
 * ticks since boot: with the pid it names one process for good, even once the pid is
 * reused). Undefined when no such process is visible from here, or it is a zombie.
 */
export async function liveProcessStartTime(pid: number): Promise<string | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (stat === undefined) return undefined;
  // The command name (field 2) is in parentheses and may hold spaces: count after it.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const state = fields[0];
  return state === 'Z' || state === 'X' ? undefined : fields[19];
}

/**
 * A container's main process, watched from /proc. Docker reports a container stopped only
 * after it has torn down its network and mounts, ~170 ms after the process died (measured
 * with Postgres on isolated nodes); a switchover's write gap waits for that report, so the
 * agent looks at /proc itself. Once a container's main process is gone nothing in it
 * serves: the kernel kills whatever else ran in its PID namespace.
 */
export interface ProcessWatch {
  /**
   * Resolves true as soon as the process has exited, false when `settled` (Docker's own
   * stop) resolves or rejects first.
   */
  exited(settled: Promise<unknown>): Promise<boolean>;
}

/**
 * Starts watching host process `pid`: call before stopping it. Undefined when it cannot be
 * seen from here (the agent runs in another PID namespace, or it is gone already): the
 * caller then waits for Docker.
 */
export async function watchProcess(pid: number): Promise<ProcessWatch | undefined> {
  const startedAt = await liveProcessStartTime(pid);
  if (startedAt === undefined) return undefined;
  return {
    async exited(settled) {
      let done = false;
      const finish = () => {
        done = true;
      };
      settled.then(finish, finish);
      while (!done) {
        if ((await liveProcessStartTime(pid)) !== startedAt) return true;
        await delay(pollMs);
      }
      return false;
    },
  };
}
