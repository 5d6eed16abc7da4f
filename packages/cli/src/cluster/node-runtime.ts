import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { waitFor } from '@service-foundry/core';
import {
  type BootProcess,
  type BootResult,
  bootNode,
  bootProcessPid,
  type NodeBootFile,
  namespaceProcesses,
  nodePowerState,
  powerOffNode,
  readBootFile,
} from '@service-foundry/fencing';
import { NodeRuntimeError } from '../errors.js';
import { componentPaths } from './components.js';
import { type NodeAddressing, nodeAddressing, releaseBlock } from './node-addresses.js';
import {
  copyImages,
  dockerdBootProcess,
  type EnginePaths,
  mountsUnder,
  unmountUnder,
  whichBinary,
} from './node-engine.js';
import { heal, type PartitionKind, type PartitionScope, partition, partitions } from './node-faults.js';
import {
  ensureNetwork,
  linkState,
  type NetworkLayout,
  networkLeftovers,
  removeNetwork,
  setLink,
} from './node-network.js';
import { isStopped, processesNaming, signal } from './node-processes.js';

export interface NodeRuntimeSpec {
  /** Names the namespaces (`<clusterId>-<node>`) and the runtime folders. */
  clusterId: string;
  /** `$SF_HOME`: node data under `nodes/<node>/`, pid files under `run/`, logs under `logs/`. */
  stateDir: string;
  /** The cluster's address block (node-addresses.ts). */
  block: number;
  /** In order: the first is node index 1 (address 10.213.K.1). */
  nodes: ReadonlyArray<{ name: string }>;
  /**
   * The cluster's etcd members, what `isolateFromEtcd` cuts: one with `node` runs inside
   * that node (client and peer ports at its address), one without on this machine (its
   * client port at this machine's segment address).
   */
  etcd: ReadonlyArray<{ clientPort: number; peerPort: number; node?: string | undefined }>;
}

/** What can be seen of one isolated node from outside, as a fault injector needs it. */
export interface NodeState {
  node: string;
  address: string;
  /** ON while any process of the node lives. */
  power: 'on' | 'off';
  /** The node's cable at the switch. */
  link: 'up' | 'down' | 'absent';
  partitions: PartitionKind[];
  dockerd: number | undefined;
  agent: { pid: number; paused: boolean } | undefined;
}

const runtimeRoot = '/run/service-foundry';
const nodeName = /^[a-z0-9][a-z0-9-]{0,31}$/;

export interface IsolatedNode {
  name: string;
  index: number;
  netns: string;
  address: string;
  bridge: string;
  /** `$SF_HOME/nodes/<node>`: data root, boot file and engine config. */
  dir: string;
  bootFile: string;
  engine: EnginePaths;
}

/**
 * The isolated nodes of one cluster: each its own network namespace on a shared segment,
 * its own dockerd and, once `sf up` adds it to the node's boot file, its own agent. Every
 * fault `sf chaos` injects on the one-machine cluster goes through here: power off/on
 * (every process of the node at once), link down/up, cut from etcd only, cut from its
 * peers only, agent paused.
 */
export class NodeRuntime {
  readonly addressing: NodeAddressing;
  readonly layout: NetworkLayout;
  readonly #nodes: Map<string, IsolatedNode>;

  constructor(readonly spec: Readonly<NodeRuntimeSpec>) {
    this.addressing = nodeAddressing(spec.block);
    if (!/^[a-z0-9][a-z0-9-]{0,31}$/.test(spec.clusterId)) {
      throw new NodeRuntimeError(`cluster id ${JSON.stringify(spec.clusterId)} cannot name namespaces`);
    }
    this.#nodes = new Map();
    spec.nodes.forEach((n, i) => {
      if (!nodeName.test(n.name) || n.name === 'sw') {
        throw new NodeRuntimeError(`node name ${JSON.stringify(n.name)} cannot name a namespace`);
      }
      const index = i + 1;
      const dir = join(spec.stateDir, 'nodes', n.name);
      const execRoot = join(runtimeRoot, spec.clusterId, n.name);
      this.#nodes.set(n.name, {
        name: n.name,
        index,
        netns: `${spec.clusterId}-${n.name}`,
        address: this.addressing.nodeAddress(index),
        bridge: this.addressing.bridge(index),
        dir,
        bootFile: join(dir, 'boot.json'),
        engine: {
          dataRoot: join(dir, 'docker'),
          execRoot,
          socket: `${execRoot}.sock`,
          daemonPidFile: join(execRoot, 'dockerd.pid'),
          configFile: join(dir, 'daemon.json'),
        },
      });
    });
    this.layout = {
      addressing: this.addressing,
      switchNetns: `${spec.clusterId}-sw`,
      hostLink: `sfseg${spec.block}`,
      nodes: [...this.#nodes.values()].map((n) => ({
        name: n.name,
        index: n.index,
        netns: n.netns,
        address: n.address,
      })),
    };
  }

  get nodes(): IsolatedNode[] {
    return [...this.#nodes.values()];
  }

  node(name: string): IsolatedNode {
    const node = this.#nodes.get(name);
    if (!node) throw new NodeRuntimeError(`no isolated node ${JSON.stringify(name)} in cluster ${this.spec.clusterId}`);
    return node;
  }

  /** The segment, the host link and every node's namespace and cable (idempotent). */
  async ensureNetwork(): Promise<void> {
    await ensureNetwork(this.layout);
  }

  /**
   * Writes the node's boot file: its dockerd, then `after` (the agent `sf up` adds), and
   * an empty engine config. Powering the node on runs exactly this.
   */
  async prepareNode(name: string, after: readonly BootProcess[] = []): Promise<void> {
    const node = this.node(name);
    const dockerd = await whichBinary('dockerd');
    if (!dockerd) throw new NodeRuntimeError('dockerd is not installed (Debian: apt-get install docker.io)');
    await mkdir(node.engine.dataRoot, { recursive: true, mode: 0o700 });
    await mkdir(join(runtimeRoot, this.spec.clusterId), { recursive: true, mode: 0o700 });
    await writeFile(node.engine.configFile, '{}\n', { mode: 0o600 });
    const boot: NodeBootFile = {
      node: name,
      netns: node.netns,
      processes: [
        dockerdBootProcess(
          dockerd,
          node.engine,
          node.bridge,
          join(this.spec.stateDir, 'run', `dockerd-${name}.pid`),
          join(this.spec.stateDir, 'logs', `dockerd-${name}.log`),
        ),
        ...after,
      ],
    };
    await writeFile(node.bootFile, `${JSON.stringify(boot, null, 2)}\n`, { mode: 0o600 });
  }

  async #boot(name: string): Promise<Readonly<NodeBootFile>> {
    return readBootFile(this.node(name).bootFile);
  }

  /**
   * Starts what of the node is not running: its dockerd first (ready), then the rest.
   * With `images`, those its engine lacks are loaded before anything after dockerd starts,
   * so the agent never finds an image missing.
   */
  async powerOn(
    name: string,
    options: {
      images?: readonly string[];
      timeoutMs?: number;
      /** Start the boot file's processes up to this one only (`sf up`: the etcd member before the agent). */
      through?: string;
    } = {},
  ): Promise<BootResult> {
    const whole = await this.#boot(name);
    const last = options.through === undefined ? -1 : whole.processes.findIndex((p) => p.name === options.through);
    if (options.through !== undefined && last < 0) {
      throw new NodeRuntimeError(`no process ${options.through} in the boot file of ${name}`);
    }
    const boot = last < 0 ? whole : { ...whole, processes: whole.processes.slice(0, last + 1) };
    const timeoutMs = options.timeoutMs ?? 90_000;
    if (!options.images?.length) return bootNode(boot, timeoutMs);
    const engine = await bootNode({ ...boot, processes: boot.processes.slice(0, 1) }, timeoutMs);
    await this.copyImages(name, options.images);
    const rest = await bootNode(boot, timeoutMs);
    return {
      started: [...engine.started, ...rest.started],
      running: rest.running.filter((p) => !engine.started.includes(p)),
    };
  }

  /** Power loss: dockerd, containerd, shims, containers and agent killed at once. */
  async powerOff(name: string, timeoutMs = 20_000): Promise<number> {
    return powerOffNode({ netns: this.node(name).netns }, timeoutMs);
  }

  async power(name: string): Promise<'on' | 'off'> {
    return nodePowerState({ netns: this.node(name).netns });
  }

  /** Loads the images the node's engine lacks from this machine's engine. */
  async copyImages(name: string, images: readonly string[]): Promise<string[]> {
    return copyImages(this.node(name).engine.socket, images);
  }

  /**
   * A clean stop, as at a planned shutdown: SIGTERM to each boot process, last started
   * first (the agent, then dockerd, which stops its containers gracefully), each given up
   * to `graceMs`; whatever still runs after that loses its power.
   */
  async shutdown(name: string, graceMs = 30_000): Promise<void> {
    const node = this.node(name);
    const boot = await this.#boot(name).catch(() => undefined);
    for (const p of [...(boot?.processes ?? [])].reverse()) {
      const pid = await bootProcessPid(node.netns, p.pidFile);
      if (pid === undefined) continue;
      // A paused process (pauseAgent) would never see its SIGTERM.
      signal(pid, 'SIGCONT');
      signal(pid, 'SIGTERM');
      await waitFor(async () => (await bootProcessPid(node.netns, p.pidFile)) === undefined, {
        description: `${p.name} of ${name} to stop`,
        timeoutMs: graceMs,
        intervalMs: 100,
      }).catch(() => undefined);
    }
    if ((await namespaceProcesses(node.netns)).length) await this.powerOff(name);
  }

  async linkDown(name: string): Promise<void> {
    await setLink(this.layout, this.node(name).index, 'down');
  }

  async linkUp(name: string): Promise<void> {
    await setLink(this.layout, this.node(name).index, 'up');
  }

  /** What a partition of node `name` is drawn around. */
  #scope(name: string): PartitionScope {
    const hostAddress = this.addressing.hostAddress;
    return {
      hostAddress,
      self: this.node(name).address,
      etcd: this.spec.etcd.map((m) =>
        m.node === undefined
          ? { address: hostAddress, ports: [m.clientPort] }
          : { address: this.node(m.node).address, ports: [m.clientPort, m.peerPort] },
      ),
    };
  }

  /** Drops the node's traffic with etcd only; its peers and the router still reach it. */
  async isolateFromEtcd(name: string): Promise<void> {
    await partition(this.node(name).netns, 'etcd', this.#scope(name));
  }

  async healEtcd(name: string): Promise<void> {
    await heal(this.node(name).netns, 'etcd');
  }

  /** Drops the node's traffic with the other nodes only; etcd and the router still reach it. */
  async isolateFromPeers(name: string): Promise<void> {
    await partition(this.node(name).netns, 'peers', this.#scope(name));
  }

  async healPeers(name: string): Promise<void> {
    await heal(this.node(name).netns, 'peers');
  }

  /** The agent's own pid (its supervisor writes it), when it runs inside the node. */
  async #agentPid(name: string): Promise<number | undefined> {
    return bootProcessPid(this.node(name).netns, componentPaths(this.spec.stateDir, `agent-${name}`).pidFile);
  }

  /** SIGSTOP: the agent neither renews its lease nor fences itself; its containers run on. */
  async pauseAgent(name: string): Promise<void> {
    const pid = await this.#agentPid(name);
    if (pid === undefined) throw new NodeRuntimeError(`the agent of ${name} is not running`);
    signal(pid, 'SIGSTOP');
  }

  async resumeAgent(name: string): Promise<void> {
    const pid = await this.#agentPid(name);
    if (pid !== undefined) signal(pid, 'SIGCONT');
  }

  async state(name: string): Promise<NodeState> {
    const node = this.node(name);
    const boot = await this.#boot(name).catch(() => undefined);
    const pidOf = async (processName: string) => {
      const p = boot?.processes.find((x) => x.name === processName);
      return p ? bootProcessPid(node.netns, p.pidFile) : undefined;
    };
    const agentPid = await this.#agentPid(name);
    const link = await linkState(this.layout, node.index);
    return {
      node: name,
      address: node.address,
      power: await this.power(name),
      link,
      partitions: link === 'absent' ? [] : await partitions(node.netns).catch(() => []),
      dockerd: await pidOf('dockerd'),
      agent: agentPid === undefined ? undefined : { pid: agentPid, paused: await isStopped(agentPid) },
    };
  }

  /**
   * Stops every node (cleanly, or at once with `purge`), removes the namespaces and the
   * host link, and unmounts what a power loss left; `purge` also deletes the nodes' data
   * and gives the address block back.
   */
  async teardown(options: { purge: boolean; graceMs?: number }): Promise<void> {
    await Promise.all(
      this.nodes.map((n) => (options.purge ? this.powerOff(n.name) : this.shutdown(n.name, options.graceMs))),
    );
    await removeNetwork(this.layout);
    const roots = this.nodes.flatMap((n) => [n.engine.dataRoot, n.engine.execRoot]);
    await unmountUnder(roots);
    for (const n of this.nodes) {
      await rm(n.engine.execRoot, { recursive: true, force: true });
      await rm(n.engine.socket, { force: true });
    }
    await rm(join(runtimeRoot, this.spec.clusterId), { recursive: true, force: true });
    if (options.purge) {
      for (const n of this.nodes) await rm(n.dir, { recursive: true, force: true });
      await releaseBlock(this.spec.block, this.spec.stateDir);
    }
  }

  /** Whatever of the runtime still exists: namespaces, the host link, node processes, mounts. */
  async leftovers(): Promise<string[]> {
    const left = await networkLeftovers(this.layout);
    for (const n of this.nodes) {
      const pids = [
        ...new Set([...(await namespaceProcesses(n.netns)), ...(await processesNaming(n.engine.execRoot))]),
      ];
      if (pids.length) left.push(`${n.name}: processes ${pids.join(', ')}`);
    }
    for (const point of await mountsUnder(this.nodes.flatMap((n) => [n.engine.dataRoot, n.engine.execRoot]))) {
      left.push(`mount ${point}`);
    }
    return left;
  }
}
