import { spawn } from 'node:child_process';
import { mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ProcessError, waitFor } from '@service-foundry/core';

/** The platform processes `sf up` runs, in start order. */
export type ComponentKind = 'etcd' | 'scheduler' | 'broker' | 'router' | 'agent';

export interface ComponentPaths {
  pidFile: string;
  logFile: string;
  configFile: string;
}

export function componentPaths(stateDir: string, name: string): ComponentPaths {
  return {
    pidFile: join(stateDir, 'run', `${name}.pid`),
    logFile: join(stateDir, 'logs', `${name}.log`),
    configFile: join(stateDir, 'config', `${name}.json`),
  };
}

/** The entry point of a component's package: `node <it> --config FILE` runs the component. */
export function mainOf(kind: Exclude<ComponentKind, 'etcd'>): string {
  return join(dirname(fileURLToPath(import.meta.resolve(`@service-foundry/${kind}`))), 'main.js');
}

/** Starts `node <package>/dist/main.js --config FILE` detached, output to its log file. */
export async function spawnComponent(
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

/** SIGTERM, then SIGKILL after `graceMs`; removes the pid file. */
export async function stopComponent(
  stateDir: string,
  name: string,
  graceMs = 15_000,
): Promise<'stopped' | 'not running'> {
  const pid = await readPid(stateDir, name);
  await rm(componentPaths(stateDir, name).pidFile, { force: true });
  if (!pid || !isAlive(pid)) return 'not running';
  process.kill(pid, 'SIGTERM');
  try {
    await waitFor(() => !isAlive(pid), {
      description: `${name} (pid ${pid}) to exit`,
      timeoutMs: graceMs,
      intervalMs: 100,
    });
  } catch {
    process.kill(pid, 'SIGKILL');
  }
  return 'stopped';
}
