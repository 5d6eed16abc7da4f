import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { SchedulerView } from '@service-foundry/api';
import { waitFor } from '@service-foundry/core';
import Docker from 'dockerode';
import type { BrokerClient } from '../broker-client.js';
import { brokersOf, type ClusterFile, etcdMembersOf, routersOf, schedulersOf } from '../cluster/cluster-file.js';
import { isAlive, readPid } from '../cluster/components.js';
import { isolatedRuntime } from '../cluster/isolated-nodes.js';
import type { NodeRuntime } from '../cluster/node-runtime.js';
import { UsageError } from '../errors.js';

const run = promisify(execFile);

/**
 * The faults `sf chaos` injects on the one-machine cluster, as a user of the platform would
 * meet them on real hosts:
 *
 * | kind | what happens | heal |
 * | --- | --- | --- |
 * | `power-loss` | every process of the node at once: its dockerd, containers and agent, and its link down (isolated nodes); the agent killed -9 and its containers killed (shared engine) | link up, power on; unfence if the controller fenced it |
 * | `isolate` | the node's link to the switch down: nobody reaches it, it reaches nobody | link up |
 * | `etcd-partition` | the node cannot reach etcd; peers and clients still reach it | remove the rule |
 * | `peer-partition` | the node reaches etcd, nothing else (peers, router) | remove the rule |
 * | `pause-agent` | the node's agent SIGSTOPped past its lease (the paused lock holder); its containers run on | SIGCONT (it may have been fenced meanwhile) |
 * | `kill-process` | kill -9 of one platform process: `scheduler-<n>` (`scheduler`: the leader), `broker-<n>` (`broker`: the first), `router-<n>`, `etcd` (`etcd-<n>` with several members) or `agent-<node>` | its supervisor restarts it within 2 s (`sf up` starts what is missing) |
 * | `etcd-outage` | etcd (every member) SIGSTOPped for the whole duration: it neither answers nor exits (a hung or unreachable etcd; its supervisor sees nothing to restart) | SIGCONT |
 *
 * After a heal, a node the controller fenced is unfenced through the operator API (its fence
 * device powers it back on) and `sf up` starts whatever is missing, so the instance can get
 * back to full strength.
 */
export const faultKinds = [
  'power-loss',
  'isolate',
  'etcd-partition',
  'peer-partition',
  'pause-agent',
  'kill-process',
  'etcd-outage',
] as const;
export type FaultKind = (typeof faultKinds)[number];

/** Faults on the control plane: no node is their target. */
export const controlPlaneFaults: ReadonlySet<FaultKind> = new Set(['kill-process', 'etcd-outage']);

/** Faults that need each node to be its own network namespace. */
const isolatedOnly: ReadonlySet<FaultKind> = new Set(['isolate', 'etcd-partition', 'peer-partition']);

export interface FaultContext {
  broker: BrokerClient;
  /** The one-machine cluster `sf up` runs here; undefined on real hosts (a broker elsewhere). */
  local: { stateDir: string; cluster: Readonly<ClusterFile> } | undefined;
}

export interface InjectedFault {
  readonly description: string;
  /** The node that met the fault; undefined for a control-plane process. */
  readonly node: string | undefined;
  heal(): Promise<void>;
}

const cliMain = fileURLToPath(new URL('../main.js', import.meta.url));

/** `sf up` in this cluster's state folder: starts every platform process that is not running. */
export async function startMissing(stateDir: string): Promise<void> {
  await run(process.execPath, [cliMain, 'up', '--skip-images'], {
    env: { ...process.env, SF_HOME: stateDir },
    timeout: 300_000,
  });
}

/**
 * The process `--target` names. Besides component names, `scheduler` is the scheduler that
 * leads now (the one whose loss matters) and `broker` the one sf talks to first.
 */
async function processPidName(target: string, ctx: FaultContext, cluster: Readonly<ClusterFile>): Promise<string> {
  const schedulers = schedulersOf(cluster);
  const brokers = brokersOf(cluster).map((b) => b.name);
  if (target === 'scheduler' && !schedulers.includes(target)) {
    const leader = (await ctx.broker.get<SchedulerView[]>('/sf/v1/schedulers')).find((s) => s.leader);
    // Registered as scheduler-1 on older clusters, whose one component is `scheduler`.
    if (!leader || !schedulers.includes(leader.name)) throw new UsageError('no scheduler leads right now');
    return leader.name;
  }
  if (target === 'broker' && !brokers.includes(target)) return brokers[0] as string;
  const names = [
    ...schedulers,
    ...brokers,
    ...routersOf(cluster).map((r) => r.name),
    ...etcdMembersOf(cluster).map((m) => m.name),
  ];
  const agents = cluster.nodes.map((n) => `agent-${n.name}`);
  if (![...names, ...agents].includes(target)) {
    throw new UsageError(`--target for kill-process is one of ${[...names, ...agents].join(', ')}`);
  }
  return target;
}

async function killSharedNode(cluster: Readonly<ClusterFile>, stateDir: string, node: string): Promise<void> {
  const pid = await readPid(stateDir, `agent-${node}`);
  if (pid && isAlive(pid)) process.kill(pid, 'SIGKILL');
  const docker = new Docker();
  const filters = JSON.stringify({ label: [`sf.cluster=${cluster.clusterId}`, `sf.node=${node}`] });
  for (const info of await docker.listContainers({ filters })) {
    await docker
      .getContainer(info.Id)
      .kill()
      .catch(() => undefined);
  }
}

/**
 * Unfences the node when the controller fenced it while the fault lasted. A fence still in
 * flight is waited out first: powering a node on while its fence device powers it off
 * would race the controller (and lose).
 */
async function unfenceIfFenced(broker: BrokerClient, node: string): Promise<boolean> {
  const state = await waitFor(
    async () => {
      const record = await broker.get<{ state: string }>(`/sf/v1/nodes/${node}/fence`);
      return record.state === 'fencing' ? undefined : record.state;
    },
    { description: `the fencing of ${node} to finish`, timeoutMs: 120_000, intervalMs: 250 },
  );
  if (state !== 'fenced' && state !== 'failed') return false;
  await broker.request('POST', `/sf/v1/nodes/${node}/unfence`, { reason: 'sf chaos: heal after the fault' });
  return true;
}

/**
 * On real hosts the only fault `sf chaos` can cause on its own is the one the platform has
 * a hand on: the node's power, through its fence devices (`sf fence`, healed by `sf unfence`).
 */
async function fenceDeviceFault(ctx: FaultContext, kind: FaultKind, node: string): Promise<InjectedFault> {
  if (kind !== 'power-loss') {
    throw new UsageError(
      `on real hosts sf chaos injects power-loss only (through the node's fence devices); ${kind} is an operator's command on the host (docs/deploy.md, "Rehearsing failures")`,
    );
  }
  await ctx.broker.request('POST', `/sf/v1/nodes/${node}/fence`, { reason: 'sf chaos: power-loss' });
  return {
    description: `power loss of ${node} (its fence devices)`,
    node,
    heal: async () => {
      await unfenceIfFenced(ctx.broker, node);
    },
  };
}

/** Injects `kind` on `node` (or, for kill-process, the named process) and returns how to heal it. */
export async function injectFault(ctx: FaultContext, kind: FaultKind, target: string): Promise<InjectedFault> {
  if (!ctx.local) return fenceDeviceFault(ctx, kind, target);
  const { stateDir, cluster } = ctx.local;
  const runtime: NodeRuntime | undefined = isolatedRuntime(stateDir, cluster);
  if (isolatedOnly.has(kind) && !runtime) {
    throw new UsageError(
      `${kind} needs isolated nodes (this cluster shares one Docker Engine: \`sf up\` without --shared-engine)`,
    );
  }
  const afterNode = (node: string) => async () => {
    await unfenceIfFenced(ctx.broker, node);
    await startMissing(stateDir);
  };
  switch (kind) {
    case 'kill-process': {
      const name = await processPidName(target, ctx, cluster);
      const pid = await readPid(stateDir, name);
      if (!pid || !isAlive(pid)) throw new UsageError(`${name} is not running`);
      process.kill(pid, 'SIGKILL');
      const node = name.startsWith('agent-') ? name.slice('agent-'.length) : undefined;
      return {
        description: `kill -9 of ${name} (pid ${pid})`,
        node,
        heal: node ? afterNode(node) : () => startMissing(stateDir),
      };
    }
    case 'etcd-outage': {
      if (cluster.externalEtcd.length) throw new UsageError('etcd-outage needs the etcd `sf up` runs');
      // Every member at once: etcd as a whole neither answers nor exits.
      const pids: number[] = [];
      for (const member of etcdMembersOf(cluster)) {
        const pid = await readPid(stateDir, member.name);
        if (!pid || !isAlive(pid)) throw new UsageError(`${member.name} is not running`);
        pids.push(pid);
      }
      for (const pid of pids) process.kill(pid, 'SIGSTOP');
      return {
        description: `etcd stopped (SIGSTOP, pid ${pids.join(', ')})`,
        node: undefined,
        heal: async () => {
          for (const pid of pids) if (isAlive(pid)) process.kill(pid, 'SIGCONT');
          await startMissing(stateDir);
        },
      };
    }
    case 'power-loss':
      if (runtime) {
        // A machine without power answers nothing, not even with a refusal: its link goes
        // down with it, so peers and probes see timeouts, as they would from a real host.
        await runtime.linkDown(target);
        await runtime.powerOff(target);
      } else await killSharedNode(cluster, stateDir, target);
      return {
        description: `power loss of ${target}`,
        node: target,
        heal: async () => {
          if (runtime) await runtime.linkUp(target);
          // A fenced node is powered on by its fence device when unfenced.
          if (!(await unfenceIfFenced(ctx.broker, target)) && runtime) await runtime.powerOn(target);
          await startMissing(stateDir);
        },
      };
    case 'pause-agent': {
      if (runtime) await runtime.pauseAgent(target);
      else {
        const pid = await readPid(stateDir, `agent-${target}`);
        if (!pid || !isAlive(pid)) throw new UsageError(`the agent of ${target} is not running`);
        process.kill(pid, 'SIGSTOP');
      }
      return {
        description: `agent of ${target} paused (SIGSTOP)`,
        node: target,
        heal: async () => {
          if (runtime) await runtime.resumeAgent(target).catch(() => undefined);
          else {
            const pid = await readPid(stateDir, `agent-${target}`);
            if (pid && isAlive(pid)) process.kill(pid, 'SIGCONT');
          }
          await afterNode(target)();
        },
      };
    }
    case 'isolate':
      await runtime?.linkDown(target);
      return {
        description: `${target} cut off (link down)`,
        node: target,
        heal: async () => {
          await runtime?.linkUp(target);
          await afterNode(target)();
        },
      };
    case 'etcd-partition':
      await runtime?.isolateFromEtcd(target);
      return {
        description: `${target} cut from etcd only`,
        node: target,
        heal: async () => {
          await runtime?.healEtcd(target);
          await afterNode(target)();
        },
      };
    case 'peer-partition':
      await runtime?.isolateFromPeers(target);
      return {
        description: `${target} cut from its peers and clients (etcd still reached)`,
        node: target,
        heal: async () => {
          await runtime?.healPeers(target);
          await afterNode(target)();
        },
      };
  }
}
