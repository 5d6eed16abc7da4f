import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import {
  applyEtcdAccess,
  connectEtcd,
  etcdArguments,
  etcdHealthy,
  etcdUsers,
  Keyspace,
  ProcessError,
  waitFor,
} from '@service-foundry/core';
import { describeExit, readSupervisionState } from '../supervision/supervision-state.js';
import type { ClusterFile } from './cluster-file.js';
import { componentPaths, isAlive, spawnSupervised } from './components.js';
import { whichBinary } from './node-engine.js';
import type { ClusterPki } from './pki.js';

/**
 * Starts the cluster's own etcd under its supervisor: TLS on client and peer URLs, client
 * certificates required (no anonymous access, not even on loopback). It serves clients on
 * 127.0.0.1 and on `extraHosts` (this machine's address on the isolated nodes' segment).
 * Resolves once etcd answers `/health`; returns the supervisor's pid.
 */
export async function startClusterEtcd(
  stateDir: string,
  cluster: Readonly<ClusterFile>,
  pki: ClusterPki,
  extraHosts: readonly string[] = [],
): Promise<number> {
  const binary = await whichBinary('etcd');
  if (!binary) throw new ProcessError('etcd is not installed (bash scripts/setup.sh installs etcd-server)', null);
  const dataDir = join(stateDir, 'etcd');
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const tls = { caFile: pki.caFile, ...pki.server, client: pki.client(etcdUsers.root) };
  const { endpoint, args } = etcdArguments({
    dataDir,
    clientPort: cluster.etcdClientPort,
    peerPort: cluster.etcdPeerPort,
    extraClientHosts: [...extraHosts],
    tls,
  });
  const supervisor = await spawnSupervised(stateDir, 'etcd', [binary, ...args]);
  await waitFor(
    async () => {
      if (!isAlive(supervisor)) throw new ProcessError('the supervisor of etcd exited', null);
      const state = await readSupervisionState(componentPaths(stateDir, 'etcd').supervisionStateFile);
      if (state && state.restarts >= 3) {
        throw new ProcessError(`etcd keeps exiting (${describeExit(state.lastExit)}); see logs/etcd.log`, null);
      }
      return etcdHealthy(endpoint, tls);
    },
    { description: `etcd at ${endpoint}`, timeoutMs: 30_000, intervalMs: 50 },
  );
  return supervisor;
}

/**
 * Creates the components' etcd users and roles (least privilege, docs/keyspace.md) and
 * turns authentication on, as `root`. Run on every `sf up`: it only adds what is missing
 * and corrects roles that drifted.
 */
export async function applyClusterAccess(endpoints: string[], cluster: Readonly<ClusterFile>, pki: ClusterPki) {
  const client = connectEtcd({ endpoints, tls: pki.client(etcdUsers.root) });
  try {
    await applyEtcdAccess(client, {
      keys: new Keyspace(cluster.keyspaceRoot),
      nodes: cluster.nodes.map((n) => n.name),
    });
  } finally {
    client.close();
  }
}
