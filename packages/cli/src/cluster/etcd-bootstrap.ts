import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  applyEtcdAccess,
  connectEtcd,
  etcdArguments,
  etcdHealthy,
  etcdUsers,
  Keyspace,
  localEtcdMemberTiming,
  ProcessError,
  TimeoutError,
  waitFor,
} from '@service-foundry/core';
import { describeExit, readSupervisionState } from '../supervision/supervision-state.js';
import { type ClusterFile, etcdMembersOf } from './cluster-file.js';
import { componentPaths, isAlive, spawnSupervised } from './components.js';
import { whichBinary } from './node-engine.js';
import type { ClusterPki } from './pki.js';

/**
 * Starts the cluster's own etcd members, each under its supervisor: TLS on client and peer
 * URLs, client certificates required (no anonymous access, not even on loopback). Each
 * serves clients on 127.0.0.1 and on `extraHosts` (this machine's address on the isolated
 * nodes' segment). Several members start side by side (a member waits for a quorum of its
 * peers). Resolves once every member answers `/health`.
 */
export async function startClusterEtcd(
  stateDir: string,
  cluster: Readonly<ClusterFile>,
  pki: ClusterPki,
  extraHosts: readonly string[] = [],
  /** Start only these members (the others run). @default every member */
  only?: readonly string[],
): Promise<void> {
  const binary = await whichBinary('etcd');
  if (!binary) throw new ProcessError('etcd is not installed (bash scripts/setup.sh installs etcd-server)', null);
  const members = etcdMembersOf(cluster);
  const tls = { caFile: pki.caFile, ...pki.server, client: pki.client(etcdUsers.root) };
  await Promise.all(
    members
      .filter((m) => !only || only.includes(m.name))
      .map(async (member) => {
        const dataDir = join(stateDir, member.dataDir);
        await mkdir(dataDir, { recursive: true, mode: 0o700 });
        const { endpoint, args } = etcdArguments({
          dataDir,
          clientPort: member.clientPort,
          peerPort: member.peerPort,
          extraClientHosts: [...extraHosts],
          tls,
          ...(members.length > 1
            ? {
                peers: {
                  name: member.memberName,
                  members: members.map((m) => ({ name: m.memberName, peerPort: m.peerPort })),
                  token: cluster.clusterId,
                  timing: localEtcdMemberTiming,
                },
              }
            : {}),
        });
        const supervisor = await spawnSupervised(stateDir, member.name, [binary, ...args]);
        const paths = componentPaths(stateDir, member.name);
        await waitFor(
          async () => {
            if (!isAlive(supervisor)) throw new ProcessError(`the supervisor of ${member.name} exited`, null);
            const state = await readSupervisionState(paths.supervisionStateFile);
            if (state && state.restarts >= 3) {
              throw new ProcessError(
                `${member.name} keeps exiting (${describeExit(state.lastExit)}); see logs/${member.name}.log`,
                null,
              );
            }
            return etcdHealthy(endpoint, tls);
          },
          { description: `${member.name} at ${endpoint}`, timeoutMs: 30_000, intervalMs: 50 },
        ).catch(async (error: unknown) => {
          // A member that runs but never answers says why only in its log: show its end.
          if (!(error instanceof TimeoutError)) throw error;
          const said = await readFile(paths.logFile, 'utf8').then(lastLogLines, () => '');
          const what = `${member.name} at ${endpoint}${said ? ` (the end of logs/${member.name}.log:\n${said})` : ''}`;
          throw new TimeoutError(what, error.waitedMs, { cause: error });
        });
      }),
  );
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

/** The last lines of a log, each cut to 300 characters (etcd logs one JSON object a line). */
function lastLogLines(text: string, count = 5): string {
  return text
    .trimEnd()
    .split('\n')
    .slice(-count)
    .map((line) => line.slice(0, 300))
    .join('\n');
}
