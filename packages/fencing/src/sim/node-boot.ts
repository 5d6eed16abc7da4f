import { spawn } from 'node:child_process';
import { mkdir, open, readFile, readlink, realpath, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
// Sub-paths, not the package's index: fence_sf_sim is a process per fence action, and
// the index loads etcd3, gRPC and pino (~0.3 s of start-up on every fence).
import { configCompiler } from '@service-foundry/core/config';
import { ProcessError } from '@service-foundry/core/errors';
import { waitFor } from '@service-foundry/core/wait';
import { untrustedDataFile } from '../trusted-file.js';
import { dockerReachable } from './docker-socket.js';
import { unmountUnder } from './mounts.js';
import { killNamespaceProcesses, namespaceProcesses, netnsInode, netnsPath } from './namespace-processes.js';
import { removeStaleContainerLinks } from './stale-links.js';

/** One process a simulated node starts when it is powered on, in order. */
export interface BootProcess {
  /** For messages and pid files: `dockerd`, `agent-node-1`. */
  name: string;
  /** argv[0] is an absolute path; run inside the node's network namespace through nsenter. */
  argv: string[];
  /** The whole environment of the process (nothing is inherited). */
  env: Record<string, string>;
  pidFile: string;
  logFile: string;
  /** Files removed before the start (a daemon's own pid file left by a power loss). @default [] */
  staleFiles: string[];
  /**
   * Folders a power loss empties, as it empties /run: unmounted and removed before a cold
   * start (nothing of the node running), so no daemon trusts a pid file or socket of the
   * processes that died (dockerd would wait on a containerd whose pid was reused).
   * @default []
   */
  volatileDirs: string[];
  /** The start counts as done once a Docker Engine answers on this socket. @default undefined */
  readyDockerSocket?: string;
}

/**
 * What a simulated node runs, written by `sf up` next to the node's data
 * (`$SF_HOME/nodes/<node>/boot.json`): its name, its network namespace and its processes.
 * Powering the node on starts them (those not running); powering it off kills every
 * process of the namespace. The fence agent and `sf up` share it, so a node a fence device
 * powers on comes back exactly as `sf up` starts it.
 */
export interface NodeBootFile {
  node: string;
  netns: string;
  processes: BootProcess[];
}

const segment = '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$';
const absolute = '^/';

const compileBootFile = configCompiler<NodeBootFile>('node boot file', {
  type: 'object',
  additionalProperties: false,
  required: ['node', 'netns', 'processes'],
  properties: {
    node: { type: 'string', pattern: segment },
    netns: { type: 'string', pattern: segment },
    processes: {
      type: 'array',
      minItems: 1,
      maxItems: 8,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'argv', 'env', 'pidFile', 'logFile', 'staleFiles', 'volatileDirs'],
        properties: {
          name: { type: 'string', pattern: segment },
          argv: { type: 'array', minItems: 1, maxItems: 64, items: { type: 'string', maxLength: 4096 } },
          env: { type: 'object', required: [], additionalProperties: { type: 'string' } },
          pidFile: { type: 'string', pattern: absolute },
          logFile: { type: 'string', pattern: absolute },
          staleFiles: { type: 'array', items: { type: 'string', pattern: absolute }, default: [] },
          volatileDirs: { type: 'array', items: { type: 'string', pattern: absolute }, default: [] },
          readyDockerSocket: { type: 'string', pattern: absolute, nullable: true },
        },
      },
    },
  },
});

/**
 * Reads a boot file, refusing one that anyone but root (or the user the platform runs as)
 * could have written: it names commands the fence agent runs as that user.
 */
export async function readBootFile(path: string): Promise<Readonly<NodeBootFile>> {
  const real = await realpath(path).catch(() => path);
  const problem = await untrustedDataFile(real);
  if (problem) throw new ProcessError(`boot file refused: ${problem}`, null);
  const boot = compileBootFile(JSON.parse(await readFile(real, 'utf8')));
  // An absolute program: nothing depends on a PATH lookup.
  // Emptied on a cold start: never a root folder.
  const shallow = boot.processes.flatMap((p) => p.volatileDirs).find((d) => d.split('/').filter(Boolean).length < 3);
  if (shallow) throw new ProcessError(`boot file ${path}: volatile folder ${shallow} is too close to /`, null);
  const relative = boot.processes.find((p) => !p.argv[0]?.startsWith('/'));
  if (relative)
    throw new ProcessError(`boot file ${path}: ${relative.name} must name its program by absolute path`, null);
  return boot;
}

/** The pid in `pidFile` when that process is alive and inside `netns`; otherwise undefined. */
export async function bootProcessPid(netns: string, pidFile: string): Promise<number | undefined> {
  const pid = Number((await readFile(pidFile, 'utf8').catch(() => '')).trim());
  if (!Number.isInteger(pid) || pid <= 1) return undefined;
  const inode = await netnsInode(netns);
  if (inode === undefined) return undefined;
  try {
    const [stat, link] = await Promise.all([readFile(`/proc/${pid}/stat`, 'utf8'), readlink(`/proc/${pid}/ns/net`)]);
    const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
    if (state === 'Z' || state === 'X') return undefined;
    return link === `net:[${inode}]` ? pid : undefined;
  } catch {
    return undefined;
  }
}

async function startProcess(netns: string, p: BootProcess, timeoutMs: number): Promise<number> {
  for (const file of p.staleFiles) await rm(file, { force: true });
  for (const file of [p.pidFile, p.logFile]) await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const log = await open(p.logFile, 'a');
  let exited: string | undefined;
  let child: ReturnType<typeof spawn>;
  try {
    // nsenter joins the namespace and then execs argv: the pid is the process's own.
    child = spawn('nsenter', [`--net=${netnsPath(netns)}`, '--', ...p.argv], {
      detached: true,
      stdio: ['ignore', log.fd, log.fd],
      env: p.env,
    });
    child.once('error', (error) => {
      exited = `cannot start ${p.name}: ${error.message}`;
    });
    child.once('exit', (code, signal) => {
      exited = `${p.name} exited during start (${signal ?? `code ${code}`}); see ${p.logFile}`;
    });
  } finally {
    await log.close();
  }
  const pid = child.pid;
  if (pid === undefined) throw new ProcessError(`cannot start ${p.name} (nsenter not found?)`, null);
  child.unref();
  await writeFile(p.pidFile, `${pid}\n`, { mode: 0o600 });
  const socket = p.readyDockerSocket;
  if (socket) {
    await waitFor(
      async () => {
        if (exited) throw new ProcessError(exited, null);
        return dockerReachable(socket);
      },
      {
        description: `${p.name} to answer on ${socket}`,
        timeoutMs,
        intervalMs: 100,
        retryOn: (error) => !(error instanceof ProcessError),
      },
    );
  }
  return pid;
}

export interface BootResult {
  /** Processes started now, by name. */
  started: string[];
  /** Processes that were running already. */
  running: string[];
}

/**
 * Powers a node on: starts, in order, each of its processes that is not running (a node
 * that is on already is left as it is). A Docker Engine must answer within `timeoutMs`.
 */
export async function bootNode(boot: Readonly<NodeBootFile>, timeoutMs = 60_000): Promise<BootResult> {
  if ((await netnsInode(boot.netns)) === undefined) {
    throw new ProcessError(`network namespace ${boot.netns} of node ${boot.node} does not exist`, null);
  }
  const result: BootResult = { started: [], running: [] };
  if ((await namespaceProcesses(boot.netns)).length === 0) {
    // A cold start: what the power loss took (/run) is gone.
    const dirs = boot.processes.flatMap((p) => p.volatileDirs);
    await unmountUnder(dirs);
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
    await removeStaleContainerLinks(netnsPath(boot.netns));
  }
  for (const p of boot.processes) {
    if ((await bootProcessPid(boot.netns, p.pidFile)) !== undefined) {
      result.running.push(p.name);
      continue;
    }
    await startProcess(boot.netns, p, timeoutMs);
    result.started.push(p.name);
  }
  return result;
}

/** ON while any process lives in the node's namespace (or descends from one). */
export async function nodePowerState(boot: Pick<NodeBootFile, 'netns'>): Promise<'on' | 'off'> {
  return (await namespaceProcesses(boot.netns)).length > 0 ? 'on' : 'off';
}

/** Power loss: every process of the node killed at once; resolves to how many there were. */
export async function powerOffNode(boot: Pick<NodeBootFile, 'netns'>, timeoutMs = 10_000): Promise<number> {
  return killNamespaceProcesses(boot.netns, timeoutMs);
}
