import { readdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { BootProcess } from '@service-foundry/fencing';
import { type ClusterFile, etcdMembersOf } from './cluster-file.js';
import { componentPaths, mainOf, supervisionCommand } from './components.js';
import { maxIsolatedNodes } from './node-addresses.js';
import { systemPath, whichBinary } from './node-engine.js';
import { NodeRuntime } from './node-runtime.js';

export type NodeRuntimeChoice = { mode: 'isolated' | 'shared'; reason: string };

/**
 * Isolated nodes wherever this machine allows them: root (namespaces, veths, a dockerd
 * per node), `ip netns`, `nsenter`, `dockerd` and `iptables`; `--shared-engine` asks for
 * agents sharing this machine's Docker Engine instead. The reason is printed by `sf up`.
 */
export async function chooseNodeRuntime(options: {
  sharedEngine: boolean;
  externalEtcd: boolean;
  nodes: number;
}): Promise<NodeRuntimeChoice> {
  if (options.sharedEngine) return { mode: 'shared', reason: '--shared-engine' };
  const missing = (what: string) => ({ mode: 'shared' as const, reason: `isolated nodes need ${what}` });
  if (process.platform !== 'linux') return missing('Linux network namespaces');
  if (process.getuid?.() !== 0) return missing('root (namespaces, veths and a dockerd per node)');
  if (options.externalEtcd) {
    return missing('the etcd `sf up` runs (with --etcd the node namespaces could not reach it)');
  }
  if (options.nodes > maxIsolatedNodes) return missing(`at most ${maxIsolatedNodes} nodes`);
  for (const tool of ['ip', 'nsenter', 'dockerd', 'iptables', 'umount']) {
    if (!(await whichBinary(tool))) return missing(`\`${tool}\` (bash scripts/setup.sh installs it)`);
  }
  if (!(await readdir('/proc/self/ns').catch(() => [] as string[])).includes('net')) {
    return missing('network namespaces in this kernel');
  }
  return {
    mode: 'isolated',
    reason:
      'each node its own network namespace, dockerd and agent (this machine allows it; --shared-engine to share one Docker Engine)',
  };
}

/** The runtime of a cluster's isolated nodes, or undefined when its nodes share one engine. */
export function isolatedRuntime(stateDir: string, cluster: Readonly<ClusterFile>): NodeRuntime | undefined {
  if (cluster.nodeRuntime !== 'isolated' || cluster.nodeBlock === undefined) return undefined;
  return new NodeRuntime({
    clusterId: cluster.clusterId,
    stateDir,
    block: cluster.nodeBlock,
    nodes: cluster.nodes.map((n) => ({ name: n.name })),
    etcd: etcdMembersOf(cluster),
  });
}

/** Variables a component reads from its environment, passed on to the processes a node boots. */
const passedOn = ['SF_LOG_LEVEL', 'SF_CATALOG_DIR'];

/**
 * The boot entry of a process a node runs under its supervisor (what systemd is on a real
 * host, docs/deploy.md), inside the node's namespace. The boot file's pid is the
 * supervisor's; the supervisor writes the process's own pid to `<name>.pid`. A power loss
 * takes both, as it takes a host's init.
 */
export async function supervisedBootProcess(
  stateDir: string,
  name: string,
  argv: readonly string[],
): Promise<BootProcess> {
  const paths = componentPaths(stateDir, name);
  const env: Record<string, string> = {
    PATH: `${systemPath()}:${dirname(process.execPath)}`,
    LANG: 'C.UTF-8',
    SF_SUPERVISOR: name,
  };
  for (const variable of passedOn) {
    const value = process.env[variable];
    if (value !== undefined) env[variable] = value;
  }
  return {
    name,
    argv: await supervisionCommand(stateDir, name, argv),
    env,
    pidFile: paths.supervisorPidFile,
    logFile: paths.logFile,
    staleFiles: [],
    volatileDirs: [],
  };
}

/** A node's agent: `node packages/agent/dist/main.js --config FILE`, the command a real host runs. */
export async function agentBootProcess(stateDir: string, node: string): Promise<BootProcess> {
  const name = `agent-${node}`;
  const { configFile } = componentPaths(stateDir, name);
  return supervisedBootProcess(stateDir, name, [process.execPath, mainOf('agent'), '--config', configFile]);
}
