import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { waitFor } from '@service-foundry/core/wait';

/** Where `ip netns add NAME` mounts a network namespace. */
export function netnsPath(name: string): string {
  return `/run/netns/${name}`;
}

/** The inode of a named network namespace, or undefined when it does not exist. */
export async function netnsInode(name: string): Promise<number | undefined> {
  try {
    return (await stat(netnsPath(name))).ino;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

interface ProcEntry {
  pid: number;
  ppid: number;
  /** The inode of its network namespace; undefined for zombies and kernel threads. */
  netns: number | undefined;
}

/**
 * Synchronous on purpose: /proc answers from memory, and a scan is a few hundred tiny reads.
 * Awaited one by one through libuv's thread pool they took 50-70 ms per scan on a quiet
 * machine, and a power-off scans several times while the fence is on the failover's path.
 */
function procEntries(): ProcEntry[] {
  const entries: ProcEntry[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(name)) continue;
    const pid = Number(name);
    const fields = statFields(pid);
    if (!fields || !runs(fields)) continue;
    const inode = /^net:\[([0-9]+)\]$/.exec(netnsLink(pid))?.[1];
    entries.push({ pid, ppid: Number(fields[1]), netns: inode ? Number(inode) : undefined });
  }
  return entries;
}

/** The fields of `/proc/<pid>/stat` after the command name (which may hold spaces and parentheses): state, ppid, …; undefined once gone. */
function statFields(pid: number): string[] | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return text.slice(text.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** Neither a zombie nor dead: the process still runs. */
function runs(fields: string[]): boolean {
  return fields[0] !== 'Z' && fields[0] !== 'X';
}

function netnsLink(pid: number): string {
  try {
    return readlinkSync(`/proc/${pid}/ns/net`);
  } catch {
    return '';
  }
}

/**
 * Every live process of a simulated node: those in its network namespace (dockerd,
 * containerd, the shims, docker-proxy, the agent) and all their descendants (the
 * containers' processes, which live in namespaces of their own under the shims).
 * Empty when the namespace does not exist.
 */
export async function namespaceProcesses(name: string): Promise<number[]> {
  const inode = await netnsInode(name);
  if (inode === undefined) return [];
  const entries = procEntries();
  const children = new Map<number, number[]>();
  for (const e of entries) children.set(e.ppid, [...(children.get(e.ppid) ?? []), e.pid]);
  const found = new Set<number>();
  const queue = entries.filter((e) => e.netns === inode).map((e) => e.pid);
  while (queue.length) {
    const pid = queue.pop() as number;
    if (pid <= 1 || pid === process.pid || found.has(pid)) continue;
    found.add(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return [...found].sort((a, b) => a - b);
}

/** Gone, or a zombie: nothing of it runs any more. */
function exited(pid: number): boolean {
  const fields = statFields(pid);
  return !fields || !runs(fields);
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

/**
 * A power loss: every process of the node dies at once. All of them are stopped first
 * (SIGSTOP, repeated until no new one appears), so none can notice its peers dying and
 * react — no dockerd shutting containers down cleanly, no agent writing a last status —
 * then all are killed. Resolves when none of them runs any more; rejects after `timeoutMs`.
 */
export async function killNamespaceProcesses(name: string, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  const stopped = new Set<number>();
  for (;;) {
    const fresh = (await namespaceProcesses(name)).filter((pid) => !stopped.has(pid));
    if (fresh.length === 0) break;
    for (const pid of fresh) {
      signal(pid, 'SIGSTOP');
      stopped.add(pid);
    }
    if (Date.now() >= deadline) break;
  }
  for (const pid of stopped) signal(pid, 'SIGKILL');
  await waitFor(
    async () => {
      const left = await namespaceProcesses(name);
      // A process that was forking while the others were stopped: kill it too.
      for (const pid of left) signal(pid, 'SIGKILL');
      // A process in the middle of its exit has left its namespace already (its
      // /proc/<pid>/ns/net no longer resolves) but still runs for a few ms: wait for it.
      return left.length === 0 && [...stopped].every(exited);
    },
    {
      description: `every process of namespace ${name} to die`,
      timeoutMs: Math.max(1000, deadline - Date.now()),
      intervalMs: 50,
    },
  );
  return stopped.size;
}
