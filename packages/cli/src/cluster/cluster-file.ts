import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { configCompiler } from '@service-foundry/core';

/** What `sf up` decided the first time; later `sf up`/`sf down` reuse it. */
export interface ClusterFile {
  /** Label on every container and volume of this cluster. */
  clusterId: string;
  /** @default '/sf' */
  keyspaceRoot: string;
  /** External etcd endpoints; empty means `sf up` runs its own etcd. @default [] */
  externalEtcd: string[];
  /**
   * The client identity every component uses with an external etcd (`--etcd-ca`,
   * `--etcd-cert`, `--etcd-key`). With its own etcd, `sf up` makes a CA and one identity
   * per component under `$SF_HOME/pki` instead.
   * @default undefined
   */
  externalEtcdTls?: { caFile: string; certFile: string; keyFile: string };
  /** Ports of the etcd `sf up` runs (chosen free on first start); the first member's with several. */
  etcdClientPort: number;
  etcdPeerPort: number;
  /**
   * With `--etcd-members 3`: every member's ports (`etcd-1` first, on the two ports above).
   * A member with `node` runs inside that isolated node and serves on its address (a power
   * loss of the node takes the member too); one without runs on this machine (127.0.0.1).
   * @default undefined (one member, the component `etcd`)
   */
  etcdMembers?: Array<{ clientPort: number; peerPort: number; node?: string }>;
  /** The first broker's port (`broker-1`; `broker` on clusters set up before several brokers). */
  brokerPort: number;
  /**
   * One broker per port on 127.0.0.1, `broker-1` on the first: all read and write the same
   * etcd keys with the same credentials, so either answers any request.
   * @default [brokerPort] (older clusters: one broker named `broker`)
   */
  brokerPorts?: number[];
  /**
   * How many schedulers run (`scheduler-1`, `scheduler-2`, ...): the eldest leads, the
   * others stand by.
   * @default 1 (older clusters: one scheduler named `scheduler`)
   */
  schedulers?: number;
  /** The operator credential (`/sf/v1`), which `sf` uses. */
  brokerUsername: string;
  brokerPassword: string;
  /** The platform's OSB credential (`/v2` only); made on the first `sf up` that needs it. */
  osbUsername?: string;
  osbPassword?: string;
  /** A read-only operator credential (`GET /sf/v1/...`). */
  viewerUsername?: string;
  viewerPassword?: string;
  /** The first router's address (clusters set up before several routers). @default '127.0.0.1' */
  routerHost: string;
  /**
   * One router per address, `router-1` on the first: each listens on the same ports on its
   * own address, and bindings name them all. @default [routerHost] (older clusters)
   */
  routerHosts?: string[];
  /**
   * Written by `sf up` while the router had two TCP data planes; read so those cluster
   * files still load, and otherwise unused: every router serves TCP routes through HAProxy.
   * @default undefined
   */
  routerDataPlane?: 'node' | 'haproxy';
  routerHttpPort: number;
  routerPortMin: number;
  routerPortMax: number;
  /**
   * Shared secret of the agents' volume servers (relocation, restores); made on the first
   * `sf up` that needs it. Never logged.
   */
  volumeSecret?: string;
  /**
   * How the nodes run on this machine. `isolated`: each its own network namespace, dockerd
   * and agent, on a segment of its own (node-runtime.ts); `shared`: agents sharing this
   * machine's Docker Engine and network, each on a loopback address.
   * @default 'shared' (clusters set up before isolated nodes existed)
   */
  nodeRuntime: 'isolated' | 'shared';
  /** Isolated nodes: the address block they use (node segment 10.213.K.0/24). @default undefined */
  nodeBlock?: number;
  /** The nodes, in order (an isolated node's index, from 1, gives its address). */
  nodes: Array<{ name: string; address: string }>;
}

const compileClusterFile = configCompiler<ClusterFile>('cluster file', {
  type: 'object',
  additionalProperties: false,
  required: [
    'clusterId',
    'etcdClientPort',
    'etcdPeerPort',
    'brokerPort',
    'brokerUsername',
    'brokerPassword',
    'routerHttpPort',
    'routerPortMin',
    'routerPortMax',
    'nodes',
  ],
  properties: {
    clusterId: { type: 'string', pattern: '^[a-z0-9][a-z0-9-]{0,31}$' },
    keyspaceRoot: { type: 'string', default: '/sf' },
    externalEtcd: { type: 'array', items: { type: 'string', pattern: '^https?://' }, default: [] },
    externalEtcdTls: {
      type: 'object',
      nullable: true,
      additionalProperties: false,
      required: ['caFile', 'certFile', 'keyFile'],
      properties: {
        caFile: { type: 'string', pattern: '^/' },
        certFile: { type: 'string', pattern: '^/' },
        keyFile: { type: 'string', pattern: '^/' },
      },
    },
    etcdClientPort: { type: 'integer', minimum: 1, maximum: 65535 },
    etcdPeerPort: { type: 'integer', minimum: 1, maximum: 65535 },
    etcdMembers: {
      type: 'array',
      minItems: 3,
      maxItems: 5,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['clientPort', 'peerPort'],
        properties: {
          clientPort: { type: 'integer', minimum: 1, maximum: 65535 },
          peerPort: { type: 'integer', minimum: 1, maximum: 65535 },
          node: { type: 'string', nullable: true },
        },
      },
      nullable: true,
    },
    brokerPort: { type: 'integer', minimum: 1, maximum: 65535 },
    brokerPorts: {
      type: 'array',
      minItems: 1,
      maxItems: 4,
      uniqueItems: true,
      items: { type: 'integer', minimum: 1, maximum: 65535 },
      nullable: true,
    },
    schedulers: { type: 'integer', minimum: 1, maximum: 3, nullable: true },
    brokerUsername: { type: 'string', minLength: 1 },
    brokerPassword: { type: 'string', minLength: 12 },
    osbUsername: { type: 'string', minLength: 1, nullable: true },
    osbPassword: { type: 'string', minLength: 12, nullable: true },
    viewerUsername: { type: 'string', minLength: 1, nullable: true },
    viewerPassword: { type: 'string', minLength: 12, nullable: true },
    routerHost: { type: 'string', default: '127.0.0.1' },
    routerHosts: {
      type: 'array',
      minItems: 1,
      maxItems: 8,
      uniqueItems: true,
      items: { type: 'string', pattern: '^127\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}$' },
      nullable: true,
    },
    routerDataPlane: { type: 'string', enum: ['node', 'haproxy'], nullable: true },
    routerHttpPort: { type: 'integer', minimum: 1, maximum: 65535 },
    routerPortMin: { type: 'integer', minimum: 1024, maximum: 65535 },
    routerPortMax: { type: 'integer', minimum: 1024, maximum: 65535 },
    volumeSecret: { type: 'string', minLength: 16, nullable: true },
    nodeRuntime: { type: 'string', enum: ['isolated', 'shared'], default: 'shared' },
    nodeBlock: { type: 'integer', minimum: 0, maximum: 255, nullable: true },
    nodes: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'address'],
        properties: { name: { type: 'string' }, address: { type: 'string' } },
      },
    },
  },
});

function clusterFilePath(stateDir: string): string {
  return join(stateDir, 'cluster.json');
}

export async function readClusterFile(stateDir: string): Promise<Readonly<ClusterFile> | undefined> {
  let raw: string;
  try {
    raw = await readFile(clusterFilePath(stateDir), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  return compileClusterFile(JSON.parse(raw));
}

export async function writeClusterFile(stateDir: string, cluster: ClusterFile): Promise<void> {
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  await writeFile(clusterFilePath(stateDir), `${JSON.stringify(cluster, null, 2)}\n`, { mode: 0o600 });
}

export function newPassword(): string {
  return randomBytes(24).toString('base64url');
}

/** The cluster's routers: component name and the address each listens on. */
export function routersOf(
  cluster: Pick<ClusterFile, 'routerHost' | 'routerHosts'>,
): Array<{ name: string; host: string }> {
  if (!cluster.routerHosts) return [{ name: 'router', host: cluster.routerHost }];
  return cluster.routerHosts.map((host, i) => ({ name: `router-${i + 1}`, host }));
}

/** The cluster's brokers: component name and port (on 127.0.0.1); the first is `brokerPort`. */
export function brokersOf(
  cluster: Pick<ClusterFile, 'brokerPort' | 'brokerPorts'>,
): Array<{ name: string; port: number }> {
  if (!cluster.brokerPorts) return [{ name: 'broker', port: cluster.brokerPort }];
  return cluster.brokerPorts.map((port, i) => ({ name: `broker-${i + 1}`, port }));
}

/** The cluster's schedulers' component names, the one started first (the leader) first. */
export function schedulersOf(cluster: Pick<ClusterFile, 'schedulers'>): string[] {
  if (cluster.schedulers === undefined) return ['scheduler'];
  return Array.from({ length: cluster.schedulers }, (_, i) => `scheduler-${i + 1}`);
}

/** One etcd member `sf up` runs: component name, etcd member name, data folder, where it serves. */
export interface EtcdMember {
  name: string;
  memberName: string;
  dataDir: string;
  clientPort: number;
  peerPort: number;
  /** The address it serves clients and peers on: its node's, or 127.0.0.1 on this machine. */
  host: string;
  /** The isolated node it runs in. @default undefined (this machine) */
  node?: string;
}

/** A member's client URL. */
export function etcdClientUrl(member: Pick<EtcdMember, 'host' | 'clientPort'>): string {
  return `https://${member.host}:${member.clientPort}`;
}

/** The cluster's own etcd members (none with an external etcd); a single member is `etcd`. */
export function etcdMembersOf(
  cluster: Pick<ClusterFile, 'externalEtcd' | 'etcdClientPort' | 'etcdPeerPort' | 'etcdMembers' | 'nodes'>,
): EtcdMember[] {
  if (cluster.externalEtcd.length) return [];
  if (!cluster.etcdMembers) {
    const { etcdClientPort: clientPort, etcdPeerPort: peerPort } = cluster;
    return [{ name: 'etcd', memberName: 'sf', dataDir: 'etcd', clientPort, peerPort, host: '127.0.0.1' }];
  }
  return cluster.etcdMembers.map(({ clientPort, peerPort, node }, i) => {
    const name = `etcd-${i + 1}`;
    const base = { name, memberName: `sf-${i + 1}`, dataDir: name, clientPort, peerPort };
    if (node === undefined) return { ...base, host: '127.0.0.1' };
    const address = cluster.nodes.find((n) => n.name === node)?.address;
    if (!address) throw new RangeError(`${name} runs on node ${node}, which the cluster does not have`);
    return { ...base, host: address, node };
  });
}
