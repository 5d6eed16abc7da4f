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
import type { BootProcess } from '@service-foundry/fencing';
import { describeExit, readSupervisionState } from '../supervision/supervision-state.js';
import { type ClusterFile, type EtcdMember, etcdClientUrl, etcdMembersOf } from './cluster-file.js';
import { componentPaths, isAlive, spawnSupervised } from './components.js';
import { supervisedBootProcess } from './isolated-nodes.js';
import { whichBinary } from './node-engine.js';
import type { ClusterPki } from './pki.js';

/**
 * How often components may ping their etcd connections (`--grpc-keepalive-min-time` of
 * the members `sf up` runs) and how often they do (`etcdKeepaliveMs`): a member whose node
 * lost power is left in about two intervals instead of a TCP timeout (minutes).
 */
export const etcdKeepalive = Object.freeze({ memberMinTimeMs: 500, clientIntervalMs: 1000 });

function serverTls(pki: ClusterPki) {
  return { caFile: pki.caFile, ...pki.server, client: pki.client(etcdUsers.root) };
}

/**
 * A member's command line: TLS on client and peer URLs with client certificates required
 * (no anonymous access, not even on loopback), its peers, the raft timing of members on one
 * machine. A member on this machine also serves clients on `extraHosts` (this machine's
 * address on the isolated nodes' segment); a member inside a node serves on its node's
 * address only.
 */
async function memberCommand(
  stateDir: string,
  cluster: Readonly<ClusterFile>,
  pki: ClusterPki,
  member: EtcdMember,
  extraHosts: readonly string[],
): Promise<string[]> {
  const binary = await whichBinary('etcd');
  if (!binary) throw new ProcessError('etcd is not installed (bash scripts/setup.sh installs etcd-server)', null);
  const members = etcdMembersOf(cluster);
  const dataDir = join(stateDir, member.dataDir);
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const { args } = etcdArguments({
    dataDir,
    clientPort: member.clientPort,
    peerPort: member.peerPort,
    host: member.host,
    extraClientHosts: member.node ? [] : [...extraHosts],
    tls: serverTls(pki),
    keepaliveMinTimeMs: etcdKeepalive.memberMinTimeMs,
    ...(members.length > 1
      ? {
          peers: {
            name: member.memberName,
            members: members.map((m) => ({ name: m.memberName, peerPort: m.peerPort, host: m.host })),
            token: cluster.clusterId,
            timing: localEtcdMemberTiming,
          },
        }
      : {}),
  });
  return [binary, ...args];
}

/**
 * Starts the members that run on this machine (not inside a node), each under its
 * supervisor, side by side (a member waits for a quorum of its peers). `only` limits it to
 * those members. Resolves once each started member answers `/health`.
 */
export async function startClusterEtcd(
  stateDir: string,
  cluster: Readonly<ClusterFile>,
  pki: ClusterPki,
  extraHosts: readonly string[] = [],
  /** Start only these members (the others run). @default every member */
  only?: readonly string[],
): Promise<void> {
  await Promise.all(
    etcdMembersOf(cluster)
      .filter((m) => m.node === undefined && (!only || only.includes(m.name)))
      .map(async (member) => {
        const argv = await memberCommand(stateDir, cluster, pki, member, extraHosts);
        const supervisor = await spawnSupervised(stateDir, member.name, argv);
        await waitForMember(stateDir, member, pki, async () => isAlive(supervisor));
      }),
  );
}

/**
 * The boot entry of a member that runs inside its node: its supervisor running etcd, as
 * systemd would on a host (docs/deploy.md). A power loss of the node takes the member.
 */
export async function etcdBootProcess(
  stateDir: string,
  cluster: Readonly<ClusterFile>,
  pki: ClusterPki,
  member: EtcdMember,
): Promise<BootProcess> {
  return supervisedBootProcess(stateDir, member.name, await memberCommand(stateDir, cluster, pki, member, []));
}

/**
 * Waits until `member` answers `/health` (30 s). Fails sooner when its supervisor is gone
 * or has restarted it three times, and a timeout carries the end of the member's log.
 */
export async function waitForMember(
  stateDir: string,
  member: EtcdMember,
  pki: ClusterPki,
  supervisorAlive: () => Promise<boolean>,
): Promise<void> {
  const paths = componentPaths(stateDir, member.name);
  const endpoint = etcdClientUrl(member);
  const tls = serverTls(pki);
  await waitFor(
    async () => {
      if (!(await supervisorAlive())) throw new ProcessError(`the supervisor of ${member.name} exited`, null);
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
