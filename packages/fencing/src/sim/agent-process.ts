import { readFile, stat } from 'node:fs/promises';

/** Linux reports process times in USER_HZ, 100 on every architecture Node runs on. */
const userHz = 100;
/** Slack between a process starting and its pid file being written (and btime's rounding). */
const startSlackMs = 2000;

export interface SimAgentProcess {
  pid: number;
  alive: boolean;
  /** Why a pid from the file does not count as the agent. */
  note: string;
}

async function bootTimeMs(): Promise<number | undefined> {
  try {
    const match = /^btime (\d+)$/m.exec(await readFile('/proc/stat', 'utf8'));
    return match?.[1] ? Number(match[1]) * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/** State letter and start time of `pid` from /proc, or undefined when there is no such process. */
async function procStat(pid: number): Promise<{ state: string; startedMs: number | undefined } | undefined> {
  let text: string;
  try {
    text = await readFile(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) may contain spaces and parentheses: fields start after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const boot = await bootTimeMs();
  const ticks = Number(fields[19]);
  return {
    state: fields[0] ?? '?',
    startedMs: boot !== undefined && Number.isFinite(ticks) ? boot + (ticks * 1000) / userHz : undefined,
  };
}

function signalZero(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Whether the process carries `SF_COMPONENT=<component>` in its environment, as `sf up`
 * starts every component. Undefined when /proc cannot say (not Linux).
 */
async function isComponent(pid: number, component: string): Promise<boolean | undefined> {
  try {
    const environ = await readFile(`/proc/${pid}/environ`);
    return environ.toString('utf8').split('\0').includes(`SF_COMPONENT=${component}`);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ENOENT' ? false : undefined;
  }
}

/**
 * The node agent of `node` named by its pid file. A zombie counts as dead, and so does a
 * process that started after the pid file was last written (its pid was reused) or that
 * is not `node`'s agent (`SF_COMPONENT=agent-<node>`): a pid file elsewhere, such as
 * `/run/sshd.pid`, must never get that process killed in the agent's place.
 */
export async function simAgentProcess(pidFile: string, node: string): Promise<SimAgentProcess | undefined> {
  let text: string;
  let writtenMs: number;
  try {
    text = await readFile(pidFile, 'utf8');
    writtenMs = (await stat(pidFile)).mtimeMs;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  const pid = Number(text.trim());
  if (!Number.isInteger(pid) || pid <= 1) throw new Error(`pid file ${pidFile} does not hold a pid`);
  const proc = await procStat(pid);
  if (proc === undefined) {
    // No /proc entry: gone, or not Linux (then signal 0 is all there is).
    const procMounted = await stat('/proc/self/stat').then(
      () => true,
      () => false,
    );
    return { pid, alive: !procMounted && signalZero(pid), note: '' };
  }
  if (proc.state === 'Z' || proc.state === 'X') return { pid, alive: false, note: 'zombie' };
  if (proc.startedMs !== undefined && proc.startedMs > writtenMs + startSlackMs) {
    return { pid, alive: false, note: `pid ${pid} was reused (started after the pid file was written)` };
  }
  if ((await isComponent(pid, `agent-${node}`)) === false) {
    return { pid, alive: false, note: `pid ${pid} is not the agent of ${node} (no SF_COMPONENT=agent-${node})` };
  }
  return { pid, alive: true, note: '' };
}
