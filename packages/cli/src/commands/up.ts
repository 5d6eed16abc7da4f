import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Catalog, freePort, ProcessError, startEtcd, waitFor } from '@service-foundry/core';
import { simAgentPath } from '@service-foundry/fencing';
import { BrokerClient } from '../broker-client.js';
import { type ClusterFile, newPassword, readClusterFile, writeClusterFile } from '../cluster/cluster-file.js';
import { componentPaths, isAlive, readPid, spawnComponent, writePid } from '../cluster/components.js';
import { checkDocker } from '../cluster/docker-check.js';
import { freePortOr } from '../cluster/ports.js';
import { type Command, intOption } from '../command.js';
import { UsageError } from '../errors.js';
import { Progress, say } from '../output.js';
import { saveTarget, stateDir } from '../target.js';
import { buildImages } from './images.js';

const agentLeaseTtlSeconds = 3;

/**
 * Gives each simulated node a fence device unless an operator configured one: the project's
 * own `fence_sf_sim`, which "powers off" a node by killing its agent and its containers.
 */
async function configureSimulatedFencing(broker: BrokerClient, dir: string, cluster: ClusterFile): Promise<void> {
  for (const node of cluster.nodes) {
    const path = `/sf/v1/nodes/${node.name}/fence-devices`;
    const existing = await broker.request('GET', path).then(
      () => true,
      (error: unknown) => {
        if ((error as { status?: number }).status === 404) return false;
        throw error;
      },
    );
    if (existing) continue;
    await broker.request('PUT', path, {
      levels: [
        {
          devices: [
            {
              agent: simAgentPath(),
              options: {
                plug: node.name,
                cluster: cluster.clusterId,
                pid_file: componentPaths(dir, `agent-${node.name}`).pidFile,
              },
              timeoutSeconds: 10,
            },
          ],
        },
      ],
    });
  }
}

export function componentNames(cluster: Pick<ClusterFile, 'nodes' | 'externalEtcd'>): string[] {
  // Agents before the scheduler: a controller that starts first would find the primaries'
  // nodes missing and fence them as lost.
  return [
    ...(cluster.externalEtcd.length ? [] : ['etcd']),
    ...cluster.nodes.map((n) => `agent-${n.name}`),
    'scheduler',
    'broker',
    'router',
  ];
}

async function firstCluster(options: Record<string, string | boolean | undefined>): Promise<ClusterFile> {
  const nodeCount = intOption(options, 'nodes', 3, 1, 20);
  const ports = typeof options['router-ports'] === 'string' ? options['router-ports'] : '40000-40999';
  const match = /^(\d+)-(\d+)$/.exec(ports);
  const min = Number(match?.[1]);
  const max = Number(match?.[2]);
  if (!match || min < 1024 || max > 65535 || min > max)
    throw new UsageError('--router-ports must look like 40000-40999');
  const external = typeof options.etcd === 'string' ? options.etcd.split(',') : [];
  // Memorable fixed ports by default; --random-ports lets several clusters start at once.
  const port = (preferred: number) => (options['random-ports'] ? freePort() : freePortOr(preferred));
  return {
    clusterId: `sf-${newPassword()
      .slice(0, 8)
      .toLowerCase()
      .replace(/[^a-z0-9]/g, 'x')}`,
    keyspaceRoot: '/sf',
    externalEtcd: external,
    etcdClientPort: await port(23790),
    etcdPeerPort: await port(23800),
    brokerPort: intOption(options, 'broker-port', await port(8470), 1, 65535),
    brokerUsername: 'admin',
    brokerPassword: newPassword(),
    volumeSecret: newPassword(),
    routerHost: '127.0.0.1',
    routerHttpPort: await port(8480),
    routerPortMin: min,
    routerPortMax: max,
    // Each simulated node gets its own loopback address, so a replica's address says which
    // node holds it, as on a real network.
    nodes: Array.from({ length: nodeCount }, (_, i) => ({ name: `node-${i + 1}`, address: `127.0.1.${i + 1}` })),
  };
}

export const up: Command = {
  name: 'up',
  summary: 'start etcd, scheduler, broker, router and N agents on this machine',
  args: [],
  options: {
    nodes: { type: 'string' },
    etcd: { type: 'string' },
    'broker-port': { type: 'string' },
    'router-ports': { type: 'string' },
    'skip-images': { type: 'boolean' },
    'random-ports': { type: 'boolean' },
  },
  async run(_args, options) {
    const dir = stateDir();
    let cluster = await readClusterFile(dir);
    if (!cluster) {
      cluster = await firstCluster(options);
      await writeClusterFile(dir, cluster);
      say(`New cluster ${cluster.clusterId}; state in ${dir}`);
    } else if (options.nodes || options.etcd || options['broker-port'] || options['router-ports']) {
      throw new UsageError(
        `cluster already set up in ${dir}: run \`sf down --purge\` to start over with other options`,
      );
    }
    if (!cluster.volumeSecret) {
      // Clusters set up before volume transfers existed get their secret now.
      cluster = { ...cluster, volumeSecret: newPassword() };
      await writeClusterFile(dir, cluster);
    }
    const volumeSecret = cluster.volumeSecret as string;
    await checkDocker();
    if (!options['skip-images']) await buildImages(await Catalog.load(), false);

    const etcdEndpoints = cluster.externalEtcd.length
      ? [...cluster.externalEtcd]
      : [`http://127.0.0.1:${cluster.etcdClientPort}`];
    const common = { etcdEndpoints, keyspaceRoot: cluster.keyspaceRoot };
    const progress = new Progress();
    for (const name of componentNames(cluster)) {
      const pid = await readPid(dir, name);
      if (pid && isAlive(pid)) {
        progress.update(`${name} already running (pid ${pid})`);
        continue;
      }
      progress.update(`starting ${name}`);
      if (name === 'etcd') {
        const etcd = await startEtcd({
          dataDir: join(dir, 'etcd'),
          clientPort: cluster.etcdClientPort,
          peerPort: cluster.etcdPeerPort,
          logFile: join(dir, 'logs', 'etcd.log'),
          detached: true,
        });
        await writePid(dir, name, etcd.pid);
      } else if (name === 'scheduler') {
        await spawnComponent(dir, name, 'scheduler', { ...common, name: 'scheduler-1' });
      } else if (name === 'broker') {
        await spawnComponent(dir, name, 'broker', {
          ...common,
          host: '127.0.0.1',
          port: cluster.brokerPort,
          username: cluster.brokerUsername,
          password: cluster.brokerPassword,
          routerHost: cluster.routerHost,
          routerPortRange: { min: cluster.routerPortMin, max: cluster.routerPortMax },
        });
      } else if (name === 'router') {
        await spawnComponent(dir, name, 'router', {
          ...common,
          listenHost: cluster.routerHost,
          httpPort: cluster.routerHttpPort,
        });
      } else {
        const node = cluster.nodes.find((n) => `agent-${n.name}` === name);
        if (!node) continue;
        await spawnComponent(dir, name, 'agent', {
          ...common,
          node: node.name,
          address: node.address,
          clusterId: cluster.clusterId,
          // Short leases: a lost node is noticed in ~3 s, which bounds failover time.
          leaseTtlSeconds: agentLeaseTtlSeconds,
          // Fresh replication positions let the controller choose a new primary without waiting.
          positionIntervalMs: 250,
          positionRefreshMs: 500,
          volumes: { secret: volumeSecret, port: 0, backupDir: join(dir, 'backups', node.name) },
        });
      }
    }
    const target = {
      url: `http://127.0.0.1:${cluster.brokerPort}`,
      username: cluster.brokerUsername,
      password: cluster.brokerPassword,
    };
    await saveTarget(target);
    const broker = new BrokerClient(target);
    progress.update('waiting for the broker and the nodes');
    const names = componentNames(cluster);
    let died: string | undefined;
    await waitFor(
      async () => {
        for (const name of names) {
          const pid = await readPid(dir, name);
          if (!pid || !isAlive(pid)) {
            died = name;
            return true;
          }
        }
        const nodes = await broker.get<unknown[]>('/sf/v1/nodes');
        return nodes.length === cluster.nodes.length;
      },
      {
        description: `the broker at ${target.url} and ${cluster.nodes.length} nodes (logs in ${join(dir, 'logs')})`,
        timeoutMs: 60_000,
        intervalMs: 200,
      },
    );
    if (died) {
      const logFile = componentPaths(dir, died).logFile;
      const tail = (await readFile(logFile, 'utf8').catch(() => '')).trim().split('\n').slice(-5).join('\n');
      throw new ProcessError(`${died} exited during start-up; last lines of ${logFile}:\n${tail}`, null);
    }
    await configureSimulatedFencing(broker, dir, cluster);
    progress.done(
      `Service Foundry is up: broker ${target.url}, ${cluster.nodes.length} nodes, router on ${cluster.routerHost}`,
    );
    say(`Logs: ${join(dir, 'logs')}. Try \`sf marketplace\`, \`sf nodes\`; stop with \`sf down\`.`);
  },
};
