import { readFile } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { Catalog, freePort, ProcessError, waitFor } from '@service-foundry/core';
import { simAgentPath } from '@service-foundry/fencing';
import { BrokerClient } from '../broker-client.js';
import { type ClusterFile, newPassword, readClusterFile, writeClusterFile } from '../cluster/cluster-file.js';
import { ComponentConfigs } from '../cluster/component-configs.js';
import { componentPaths, isAlive, readPid, spawnComponent, writePid } from '../cluster/components.js';
import { checkDocker } from '../cluster/docker-check.js';
import { applyClusterAccess, startClusterEtcd } from '../cluster/etcd-bootstrap.js';
import { ClusterPki } from '../cluster/pki.js';
import { ephemeralOverlap, freePortOr } from '../cluster/ports.js';
import { type Command, intOption } from '../command.js';
import { UsageError } from '../errors.js';
import { say } from '../output.js';
import { ProgressDisplay } from '../progress-display.js';
import { saveTarget, stateDir } from '../target.js';
import { buildImages } from './images.js';

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
  const ports = typeof options['router-ports'] === 'string' ? options['router-ports'] : '30000-30999';
  const match = /^(\d+)-(\d+)$/.exec(ports);
  const min = Number(match?.[1]);
  const max = Number(match?.[2]);
  if (!match || min < 1024 || max > 65535 || min > max)
    throw new UsageError('--router-ports must look like 30000-30999');
  const external = typeof options.etcd === 'string' ? options.etcd.split(',') : [];
  const externalTls = externalEtcdTls(options, external.length > 0);
  // Memorable fixed ports by default; --random-ports lets several clusters start at once.
  const port = (preferred: number) => (options['random-ports'] ? freePort() : freePortOr(preferred));
  return {
    clusterId: `sf-${newPassword()
      .slice(0, 8)
      .toLowerCase()
      .replace(/[^a-z0-9]/g, 'x')}`,
    keyspaceRoot: '/sf',
    externalEtcd: external,
    ...(externalTls ? { externalEtcdTls: externalTls } : {}),
    etcdClientPort: await port(23790),
    etcdPeerPort: await port(23800),
    brokerPort: intOption(options, 'broker-port', await port(8470), 1, 65535),
    brokerUsername: 'admin',
    brokerPassword: newPassword(),
    osbUsername: 'platform',
    osbPassword: newPassword(),
    viewerUsername: 'viewer',
    viewerPassword: newPassword(),
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

/** `--etcd-ca/--etcd-cert/--etcd-key`: the identity components use with an external etcd. */
function externalEtcdTls(options: Record<string, string | boolean | undefined>, external: boolean) {
  const files = { caFile: options['etcd-ca'], certFile: options['etcd-cert'], keyFile: options['etcd-key'] };
  const given = Object.values(files).filter((f) => typeof f === 'string');
  if (given.length === 0) return undefined;
  if (!external) throw new UsageError('--etcd-ca, --etcd-cert and --etcd-key go with --etcd URLS');
  if (given.length !== 3) throw new UsageError('give all of --etcd-ca, --etcd-cert and --etcd-key');
  const path = (f: unknown) => (isAbsolute(f as string) ? (f as string) : resolve(f as string));
  return { caFile: path(files.caFile), certFile: path(files.certFile), keyFile: path(files.keyFile) };
}

/** Credentials added since a cluster was first set up are made on its next `sf up`. */
function withMissingSecrets(cluster: Readonly<ClusterFile>): ClusterFile | undefined {
  const missing = {
    ...(cluster.volumeSecret ? {} : { volumeSecret: newPassword() }),
    ...(cluster.osbPassword ? {} : { osbUsername: 'platform', osbPassword: newPassword() }),
    ...(cluster.viewerPassword ? {} : { viewerUsername: 'viewer', viewerPassword: newPassword() }),
  };
  return Object.keys(missing).length ? { ...cluster, ...missing } : undefined;
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
    'etcd-ca': { type: 'string' },
    'etcd-cert': { type: 'string' },
    'etcd-key': { type: 'string' },
  },
  async run(_args, options) {
    const dir = stateDir();
    let cluster = await readClusterFile(dir);
    if (!cluster) {
      cluster = await firstCluster(options);
      await writeClusterFile(dir, cluster);
      say(`New cluster ${cluster.clusterId}; state in ${dir}`);
      const overlap = await ephemeralOverlap(cluster.routerPortMin, cluster.routerPortMax);
      if (overlap) {
        say(
          `warning: router ports ${overlap} overlap the kernel's ephemeral ports: an outgoing connection may hold one and keep the router from listening there; prefer a range below`,
        );
      }
    } else if (
      options.nodes ||
      options.etcd ||
      options['etcd-ca'] ||
      options['broker-port'] ||
      options['router-ports']
    ) {
      throw new UsageError(
        `cluster already set up in ${dir}: run \`sf down --purge\` to start over with other options`,
      );
    }
    const completed = withMissingSecrets(cluster);
    if (completed) {
      cluster = completed;
      await writeClusterFile(dir, cluster);
    }
    const volumeSecret = cluster.volumeSecret as string;
    await checkDocker();
    if (!options['skip-images']) await buildImages(await Catalog.load(), false);

    const progress = new ProgressDisplay();
    const pki = new ClusterPki(join(dir, 'pki'));
    progress.status('certificates (cluster CA, etcd, one identity per component)');
    await pki.ensure(cluster.nodes.map((n) => n.name));
    const configs = new ComponentConfigs(cluster, pki, dir);
    if (cluster.externalEtcd.length === 0) {
      const pid = await readPid(dir, 'etcd');
      if (pid && isAlive(pid)) progress.status(`etcd already running (pid ${pid})`);
      else {
        progress.status('starting etcd (TLS, client certificates required)');
        await writePid(dir, 'etcd', await startClusterEtcd(dir, cluster, pki));
      }
      progress.status('etcd: one user and role per component, authentication on');
      await applyClusterAccess(configs.etcdEndpoints, cluster, pki);
    }
    for (const name of componentNames(cluster).filter((n) => n !== 'etcd')) {
      const pid = await readPid(dir, name);
      if (pid && isAlive(pid)) {
        progress.status(`${name} already running (pid ${pid})`);
        continue;
      }
      progress.status(`starting ${name}`);
      if (name === 'scheduler') {
        await spawnComponent(dir, name, 'scheduler', configs.scheduler());
      } else if (name === 'broker') {
        await spawnComponent(dir, name, 'broker', configs.broker());
      } else if (name === 'router') {
        await spawnComponent(dir, name, 'router', configs.router());
      } else {
        const node = cluster.nodes.find((n) => `agent-${n.name}` === name);
        if (!node) continue;
        await spawnComponent(dir, name, 'agent', configs.agent(node, volumeSecret));
      }
    }
    const target = {
      url: `http://127.0.0.1:${cluster.brokerPort}`,
      username: cluster.brokerUsername,
      password: cluster.brokerPassword,
    };
    await saveTarget(target);
    const broker = new BrokerClient(target);
    progress.status('waiting for the broker and the nodes');
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
