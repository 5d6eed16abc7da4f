import { setTimeout as delay } from 'node:timers/promises';
import { simAgentProcess } from './agent-process.js';
import { dockerReachable, killContainer, liveContainers } from './docker-socket.js';
import { simAgentMetadata } from './metadata.js';
import { bootNode, type NodeBootFile, nodePowerState, powerOffNode, readBootFile } from './node-boot.js';

/** Exit codes of the fence-agent protocol. */
export const exitCodes = { ok: 0, error: 1, statusOff: 2 } as const;

export interface SimAgentOutput {
  stdout(line: string): void;
  stderr(line: string): void;
}

interface Target {
  node: string;
  cluster: string;
  pidFile: string | undefined;
  /** An isolated node (its own network namespace and dockerd): its boot file. */
  bootFile: string | undefined;
  socket: string;
  powerTimeoutMs: number;
}

class UsageFailure extends Error {}

function target(options: ReadonlyMap<string, string>): Target {
  const node = options.get('plug') || options.get('port') || options.get('nodename') || '';
  const cluster = options.get('cluster') ?? '';
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(node)) throw new UsageFailure('plug (the node name) is required');
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(cluster))
    throw new UsageFailure('cluster (the sf.cluster label) is required');
  const timeout = Number(options.get('power_timeout') ?? '10');
  if (!(timeout > 0 && timeout <= 600)) throw new UsageFailure('power_timeout must be 1 to 600 seconds');
  return {
    node,
    cluster,
    pidFile: options.get('pid_file') || undefined,
    bootFile: options.get('boot_file') || undefined,
    socket: options.get('docker_socket') || '/var/run/docker.sock',
    powerTimeoutMs: timeout * 1000,
  };
}

function labels(t: Target): string[] {
  return [`sf.node=${t.node}`, `sf.cluster=${t.cluster}`];
}

/** ON while the node's agent process or any of its containers runs. */
async function powerState(t: Target): Promise<{ on: boolean; agentPid?: number; containers: string[] }> {
  const agent = t.pidFile ? await simAgentProcess(t.pidFile, t.node) : undefined;
  const containers = (await liveContainers(t.socket, labels(t))).map((c) => c.Id);
  const on = agent?.alive === true || containers.length > 0;
  return agent?.alive ? { on, agentPid: agent.pid, containers } : { on, containers };
}

async function powerOff(t: Target, out: SimAgentOutput): Promise<number> {
  const before = await powerState(t);
  if (!before.on) {
    out.stdout('Success: Already OFF');
    return exitCodes.ok;
  }
  // The agent first: alive, it would notice its containers dying and start them again.
  if (before.agentPid !== undefined) {
    try {
      process.kill(before.agentPid, 'SIGKILL');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
    }
  }
  const deadline = Date.now() + t.powerTimeoutMs;
  for (;;) {
    const now = await powerState(t);
    for (const id of now.containers) await killContainer(t.socket, id);
    if (!now.on) {
      out.stdout('Success: Powered OFF');
      return exitCodes.ok;
    }
    if (Date.now() >= deadline) {
      out.stderr(
        `Failed: Timed out waiting to power OFF (agent ${now.agentPid ?? 'gone'}, ${now.containers.length} containers)`,
      );
      return exitCodes.error;
    }
    await delay(100);
  }
}

async function isolatedBoot(t: Target): Promise<Readonly<NodeBootFile>> {
  const boot = await readBootFile(t.bootFile as string);
  if (boot.node !== t.node) throw new UsageFailure(`boot_file is node ${boot.node}'s, not ${t.node}'s`);
  return boot;
}

/**
 * An isolated node has a real power switch: off kills every process of its network
 * namespace at once (dockerd, containerd, shims, containers, agent), on boots it the way
 * `sf up` does, status is ON while any of them lives.
 */
async function isolatedAction(action: 'status' | 'off' | 'on', t: Target, out: SimAgentOutput): Promise<number> {
  const boot = await isolatedBoot(t);
  const state = await nodePowerState(boot);
  if (action === 'status') {
    out.stdout(`Status: ${state === 'on' ? 'ON' : 'OFF'}`);
    return state === 'on' ? exitCodes.ok : exitCodes.statusOff;
  }
  if (action === 'off') {
    if (state === 'off') {
      out.stdout('Success: Already OFF');
      return exitCodes.ok;
    }
    await powerOffNode(boot, t.powerTimeoutMs);
    out.stdout('Success: Powered OFF');
    return exitCodes.ok;
  }
  const booted = await bootNode(boot, Math.max(t.powerTimeoutMs, 60_000));
  out.stdout(
    booted.started.length ? `Success: Powered ON (started ${booted.started.join(', ')})` : 'Success: Already ON',
  );
  return exitCodes.ok;
}

async function listPlugs(t: { cluster: string; socket: string }, out: SimAgentOutput): Promise<number> {
  const nodes = new Set<string>();
  for (const c of await liveContainers(t.socket, [`sf.cluster=${t.cluster}`])) {
    const node = c.Labels?.['sf.node'];
    if (node) nodes.add(node);
  }
  for (const node of [...nodes].sort()) out.stdout(`${node},${node}`);
  return exitCodes.ok;
}

/**
 * One invocation of fence_sf_sim. With `boot_file` (an isolated node): `off` kills every
 * process of the node's network namespace, `on` boots it again, `reboot` is `off`, `status`
 * is ON while any of them lives. Without (agents sharing one Docker Engine): `status`
 * exits 0 (ON) or 2 (OFF); `off` SIGKILLs the node's agent (from its pid file) and every
 * container labelled with the node and the cluster, then waits until none runs; `on` does
 * nothing (those nodes are started by `sf up`); `reboot` is `off`. Any failure to find
 * out exits 1: unknown is never OFF.
 */
export async function runSimAgent(options: ReadonlyMap<string, string>, out: SimAgentOutput): Promise<number> {
  const action = options.get('action') || options.get('o') || 'reboot';
  try {
    switch (action) {
      case 'metadata':
        out.stdout(simAgentMetadata());
        return exitCodes.ok;
      case 'monitor': {
        const socket = options.get('docker_socket') || '/var/run/docker.sock';
        if (await dockerReachable(socket)) return exitCodes.ok;
        out.stderr(`Failed: Docker Engine at ${socket} does not answer`);
        return exitCodes.error;
      }
      case 'list': {
        const cluster = options.get('cluster') ?? '';
        if (!cluster) throw new UsageFailure('cluster (the sf.cluster label) is required');
        return await listPlugs({ cluster, socket: options.get('docker_socket') || '/var/run/docker.sock' }, out);
      }
      case 'validate-all':
        target(options);
        return exitCodes.ok;
      case 'status': {
        const t = target(options);
        if (t.bootFile) return await isolatedAction('status', t, out);
        const state = await powerState(t);
        out.stdout(`Status: ${state.on ? 'ON' : 'OFF'}`);
        return state.on ? exitCodes.ok : exitCodes.statusOff;
      }
      case 'off':
      case 'reboot': {
        const t = target(options);
        // `reboot` stays off: a fenced node comes back through unfencing (`on`), never by itself.
        return t.bootFile ? await isolatedAction('off', t, out) : await powerOff(t, out);
      }
      case 'on': {
        const t = target(options);
        if (t.bootFile) return await isolatedAction('on', t, out);
        out.stdout('Success: Powered ON (nothing started: simulated nodes are started by sf up)');
        return exitCodes.ok;
      }
      default:
        out.stderr(`Failed: Unrecognised action '${action}'`);
        return exitCodes.error;
    }
  } catch (error) {
    out.stderr(`Failed: ${(error as Error).message}`);
    return exitCodes.error;
  }
}
