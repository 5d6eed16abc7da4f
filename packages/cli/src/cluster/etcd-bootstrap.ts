import { join } from 'node:path';
import { applyEtcdAccess, connectEtcd, etcdUsers, Keyspace, startEtcd } from '@service-foundry/core';
import type { ClusterFile } from './cluster-file.js';
import type { ClusterPki } from './pki.js';

/**
 * Starts the cluster's own etcd: TLS on client and peer URLs, client certificates
 * required (no anonymous access, not even on loopback). It serves clients on 127.0.0.1 and
 * on `extraHosts` (this machine's address on the isolated nodes' segment). Returns its pid.
 */
export async function startClusterEtcd(
  stateDir: string,
  cluster: Readonly<ClusterFile>,
  pki: ClusterPki,
  extraHosts: readonly string[] = [],
) {
  const etcd = await startEtcd({
    dataDir: join(stateDir, 'etcd'),
    clientPort: cluster.etcdClientPort,
    extraClientHosts: [...extraHosts],
    peerPort: cluster.etcdPeerPort,
    logFile: join(stateDir, 'logs', 'etcd.log'),
    detached: true,
    tls: { caFile: pki.caFile, ...pki.server, client: pki.client(etcdUsers.root) },
  });
  return etcd.pid;
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
