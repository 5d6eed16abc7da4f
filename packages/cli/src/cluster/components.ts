import { spawn } from 'node:child_process';
import { mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ProcessError, waitFor } from '@service-foundry/core';
import type { SupervisionSpec } from '../supervision/supervision-spec.js';
import { readSupervisionState, type SupervisionState } from '../supervision/supervision-state.js';
import { signal } from './node-processes.js';

/** The supervisor's entry point (dist/supervision/supervise-main.js). */
const superviseMain = fileURLToPath(new URL('../supervision/supervise-main.js', import.meta.url));

/** The platform processes `sf up` runs, in start order. */
export type ComponentKind = 'etcd' | 'scheduler' | 'broker' | 'router' | 'agent';

export interface ComponentPaths {
  /** The component's own pid (written by its supervisor at every start). */
  pidFile: string;
  logFile: string;
  configFile: string;
  /** The supervisor's pid: what `sf down` signals. */
  supervisorPidFile: string;
  /** What the supervisor runs (supervision-spec.ts). */
  supervisionSpecFile: string;
  /** Restarts and the last exit (supervision-state.ts). */
  supervisionStateFile: string;
}

export function componentPaths(stateDir: string, name: string): ComponentPaths {
  return {
    pidFile: join(stateDir, 'run', `${name}.pid`),
    logFile: join(stateDir, 'logs', `${name}.log`),
    configFile: join(stateDir, 'config', `${name}.json`),
    supervisorPidFile: join(stateDir, 'run', `${name}.supervisor.pid`),
    supervisionSpecFile: join(stateDir, 'config', `${name}.supervise.json`),
    supervisionStateFile: join(stateDir, 'run', `${name}.supervision.json`),
  };
}

/** The entry point of a component's package: `node <it> --config FILE` runs the component. */
export function mainOf(kind: Exclude<ComponentKind, 'etcd'>): string {
  return join(dirname(fileURLToPath(import.meta.resolve(`@service-foundry/${kind}`))), 'main.js');
}

/**
 * Starts a component under its supervisor (supervision/supervisor.ts): restarted within 2 s
 * whenever it exits unasked. Returns the supervisor's pid.
 */
export async function spawnComponent(
  stateDir: string,
  name: string,
  kind: Exclude<ComponentKind, 'etcd'>,
  config: unknown,
): Promise<number> {
  const paths = await writeComponentConfig(stateDir, name, config);
  return spawnSupervised(stateDir, name, [process.execPath, mainOf(kind), '--config', paths.configFile]);
}

/**
 * Starts `node <package>/dist/main.js --config FILE` detached and unsupervised: for agents
 * sharing this machine's engine, whose simulated fence device powers the "node" off by
 * killing the agent (a supervisor would power it back on).
 */
export async function spawnUnsupervised(
  stateDir: string,
  name: string,
  kind: Exclude<ComponentKind, 'etcd'>,
  config: unknown,
): Promise<number> {
  const paths = await writeComponentConfig(stateDir, name, config);
  const log = await open(paths.logFile, 'a');
  const child = spawn(process.execPath, [mainOf(kind), '--config', paths.configFile], {
    detached: true,
    stdio: ['ignore', log.fd, log.fd],
    env: { ...process.env, SF_COMPONENT: name },
  });
  await log.close();
  child.unref();
  const pid = child.pid;
  if (!pid) throw new ProcessError(`could not start ${name}`, null);
  await writePid(stateDir, name, pid);
  return pid;
}

/**
 * Writes the supervision spec of `name` and returns the supervisor's command: what `sf up`
 * spawns here, and what an isolated node boots for its agent.
 */
export async function supervisionCommand(stateDir: string, name: string, argv: readonly string[]): Promise<string[]> {
  const paths = componentPaths(stateDir, name);
  for (const file of [paths.supervisionSpecFile, paths.supervisionStateFile]) {
    await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  }
  const spec: Partial<SupervisionSpec> = {
    name,
    argv: [...argv],
    pidFile: paths.pidFile,
    stateFile: paths.supervisionStateFile,
    stopGraceMs: stopGraceMs,
  };
  await writeFile(paths.supervisionSpecFile, `${JSON.stringify(spec, null, 2)}\n`, { mode: 0o600 });
  return [process.execPath, superviseMain, '--spec', paths.supervisionSpecFile];
}

/** Starts `argv` under a detached supervisor logging to the component's log. */
export async function spawnSupervised(stateDir: string, name: string, argv: readonly string[]): Promise<number> {
  const [program, ...args] = (await supervisionCommand(stateDir, name, argv)) as [string, ...string[]];
  const paths = componentPaths(stateDir, name);
  // A previous run's pid and state must not be read as this run's.
  await rm(paths.pidFile, { force: true });
  await rm(paths.supervisionStateFile, { force: true });
  await mkdir(dirname(paths.logFile), { recursive: true, mode: 0o700 });
  const log = await open(paths.logFile, 'a');
  const env: NodeJS.ProcessEnv = { ...process.env, SF_SUPERVISOR: name };
  delete env.SF_COMPONENT;
  const child = spawn(program, args, { detached: true, stdio: ['ignore', log.fd, log.fd], env });
  await log.close();
  child.unref();
  const pid = child.pid;
  if (!pid) throw new ProcessError(`could not start the supervisor of ${name}`, null);
  await writeFile(paths.supervisorPidFile, `${pid}\n`, { mode: 0o600 });
  return pid;
}

/** Writes a component's config file (0600) and makes its pid and log folders. */
export async function writeComponentConfig(stateDir: string, name: string, config: unknown): Promise<ComponentPaths> {
  const paths = componentPaths(stateDir, name);
  for (const file of Object.values(paths)) await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  await writeFile(paths.configFile, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  return paths;
}

export async function writePid(stateDir: string, name: string, pid: number): Promise<void> {
  const { pidFile } = componentPaths(stateDir, name);
  await mkdir(dirname(pidFile), { recursive: true, mode: 0o700 });
  await writeFile(pidFile, `${pid}\n`);
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function readPid(stateDir: string, name: string): Promise<number | undefined> {
  try {
    const pid = Number((await readFile(componentPaths(stateDir, name).pidFile, 'utf8')).trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** How long a component has to stop on SIGTERM before SIGKILL. */
const stopGraceMs = 15_000;

async function readPidFile(file: string): Promise<number | undefined> {
  const pid = Number((await readFile(file, 'utf8').catch(() => '')).trim());
  return Number.isInteger(pid) && pid > 1 ? pid : undefined;
}

async function terminate(pid: number, what: string, graceMs: number): Promise<boolean> {
  signal(pid, 'SIGTERM');
  try {
    await waitFor(() => !isAlive(pid), {
      description: `${what} (pid ${pid}) to exit`,
      timeoutMs: graceMs,
      intervalMs: 100,
    });
    return true;
  } catch {
    return false;
  }
}

/**
 * Stops a component: SIGTERM to its supervisor, which stops the component (SIGKILL after
 * 15 s) and exits; a component running without one (its supervisor was killed) gets the
 * SIGTERM itself. Removes the pid files.
 */
export async function stopComponent(stateDir: string, name: string): Promise<'stopped' | 'not running'> {
  const paths = componentPaths(stateDir, name);
  const supervisor = await readPidFile(paths.supervisorPidFile);
  const pid = await readPid(stateDir, name);
  let stopped = false;
  if (supervisor && isAlive(supervisor)) {
    stopped = true;
    if (!(await terminate(supervisor, `the supervisor of ${name}`, stopGraceMs + 5000))) {
      signal(supervisor, 'SIGKILL');
    }
  }
  if (pid && isAlive(pid)) {
    stopped = true;
    if (!(await terminate(pid, name, stopGraceMs))) signal(pid, 'SIGKILL');
  }
  await rm(paths.pidFile, { force: true });
  await rm(paths.supervisorPidFile, { force: true });
  return stopped ? 'stopped' : 'not running';
}

/** What can be seen of one component from outside: its supervisor, itself, its restarts. */
export interface ComponentStatus {
  name: string;
  /** The live supervisor's pid; undefined when none runs (shared-engine agents have none). */
  supervisor: number | undefined;
  /** The live component's pid. */
  pid: number | undefined;
  supervision: SupervisionState | undefined;
}

export async function componentStatus(stateDir: string, name: string): Promise<ComponentStatus> {
  const paths = componentPaths(stateDir, name);
  const supervisor = await readPidFile(paths.supervisorPidFile);
  const pid = await readPid(stateDir, name);
  return {
    name,
    supervisor: supervisor !== undefined && isAlive(supervisor) ? supervisor : undefined,
    pid: pid !== undefined && isAlive(pid) ? pid : undefined,
    supervision: supervisor === undefined ? undefined : await readSupervisionState(paths.supervisionStateFile),
  };
}
