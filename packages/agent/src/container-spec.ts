import {
  type AssignmentRecord,
  type CatalogEntry,
  CatalogError,
  type InstanceSecret,
  InvalidConfigError,
  isKeySegment,
  type PlanConnections,
  planClientTls,
  type ReplicaRole,
  type ServiceRuntime,
} from '@service-foundry/core';
import type Docker from 'dockerode';
import { endpointText } from './replication-spec.js';
import {
  type ContainerTls,
  type ReplicaSecrets,
  type ReplicaSecretsOptions,
  replicaSecrets,
  type SecretFiles,
} from './secret-files.js';

export { loadContainerTls, replicaSecrets, secretFilesArchive, tlsEnv } from './secret-files.js';

/** Docker labels that tie a container or volume to its cluster, node and replica. */
export const labelKeys = {
  cluster: 'sf.cluster',
  node: 'sf.node',
  instance: 'sf.instance',
  ordinal: 'sf.ordinal',
  service: 'sf.service',
  /** Replicated services: the data generation the container or volume belongs to. */
  generation: 'sf.generation',
  /** Replicated services: the role the container was created with (it may be promoted later). */
  role: 'sf.role',
  /** A volume made when a primary was demoted without a generation bump: the epoch it follows. */
  rebuildEpoch: 'sf.rebuild-epoch',
  /** Replicated services: the upstream (`host:port`) a replica's environment named at creation. */
  upstream: 'sf.upstream',
} as const;

export interface NodeIdentity {
  clusterId: string;
  node: string;
  /** Host address the container's port is published on. */
  address: string;
  /**
   * The node's service certificate (agent config `serviceTls`), given to every container of
   * a service with `runtime.tls`. @default undefined (such services are refused here)
   */
  serviceTls?: ContainerTls;
}

export interface ReplicaRef {
  instanceId: string;
  ordinal: number;
}

/** One name for a replica's container and its volume: unique per node on a shared Docker Engine. */
export function replicaResourceName(node: string, replica: ReplicaRef): string {
  return `sf-${node}-${replica.instanceId}-${replica.ordinal}`;
}

/** Labels selecting everything this agent owns on the Docker Engine. */
export function nodeLabels(identity: NodeIdentity): Record<string, string> {
  return { [labelKeys.cluster]: identity.clusterId, [labelKeys.node]: identity.node };
}

export function replicaLabels(identity: NodeIdentity, assignment: AssignmentRecord): Record<string, string> {
  return {
    ...nodeLabels(identity),
    [labelKeys.instance]: assignment.instanceId,
    [labelKeys.ordinal]: String(assignment.ordinal),
    [labelKeys.service]: assignment.serviceName,
  };
}

/** The replica a labelled container belongs to, or undefined when its labels are not ours. */
export function replicaFromLabels(labels: Record<string, string>): ReplicaRef | undefined {
  const instanceId = labels[labelKeys.instance];
  const ordinalText = labels[labelKeys.ordinal] ?? '';
  if (!instanceId || !isKeySegment(instanceId) || !/^(0|[1-9][0-9]{0,8})$/.test(ordinalText)) return undefined;
  const ordinal = Number(ordinalText);
  return { instanceId, ordinal };
}

export function portSpec(runtime: ServiceRuntime): string {
  return `${runtime.port}/tcp`;
}

/** How a container of a replicated service differs from a standalone one. */
export interface ReplicatedContainer {
  role: ReplicaRole;
  generation: number;
  /** The data volume to mount (see replica-volumes.ts). */
  volume: string;
  /** The recipe's variables (role, upstream, replication user, replica name); no secret. */
  env: Record<string, string>;
  /** Another container port to publish on the node address (the replication port, `peerAddress: node`). */
  publishPort?: number;
}

/** What the agent creates for a replica: Docker's options, and the files put in before the start. */
export interface ContainerSpec {
  options: Docker.ContainerCreateOptions;
  secretFiles: SecretFiles;
}

/** The environment variable through which a container learns its plan's connection limit. */
export const maxConnectionsEnv = 'SF_MAX_CONNECTIONS';

/**
 * Processes a container may run: every connection the plan allows (Postgres forks one per
 * connection), as many again for connections being turned away (Postgres forks those too,
 * before it counts them), and room for the service's own workers and the platform's
 * `docker exec` commands. A flood of connections then makes forks fail, which the server
 * survives, instead of exhausting the container's memory, which it does not.
 */
export function pidsLimit(connections: PlanConnections): number {
  return connections.service * 2 + 64;
}

/**
 * The image a new container of the replica is made from: the one its assignment names (an
 * instance pinned to a maintenance version), else the catalog's current one.
 */
export function imageOf(assignment: Pick<AssignmentRecord, 'image'>, entry: CatalogEntry): string {
  return assignment.image ?? entry.runtime.image;
}

/**
 * The password files (and TLS material) a replica's container gets, and the variables
 * naming them: put in at creation, and again into the running container when its
 * passwords are rotated (password-rotation.ts). `replicated`: the container streams with
 * the recipe's replication login.
 */
export function containerSecrets(
  identity: NodeIdentity,
  assignment: AssignmentRecord,
  entry: CatalogEntry,
  secret: InstanceSecret,
  replicated: boolean,
): ReplicaSecrets {
  const name = replicaResourceName(identity.node, assignment);
  const replicationPasswordFileEnv = replicated ? entry.replication?.env.replicationPasswordFile : undefined;
  const secretOptions: ReplicaSecretsOptions = replicationPasswordFileEnv ? { replicationPasswordFileEnv } : {};
  const clients = planClientTls(entry, assignment.planName);
  if (clients !== 'none') {
    // Never a TLS-capable service in clear because this node lacks its certificate: its
    // replication and clients would cross the network unencrypted.
    if (!identity.serviceTls) {
      throw new InvalidConfigError('agent config', [
        `service ${entry.osb.name} serves TLS (plan ${assignment.planName}: clients ${clients}) but node ${identity.node} has no service certificate (serviceTls); not starting ${name}`,
      ]);
    }
    secretOptions.tls = { material: identity.serviceTls, clients };
  }
  return replicaSecrets(entry.runtime, secret, secretOptions);
}

/**
 * TCP keepalive of the replica's own network namespace: a connection whose peer forgot it
 * (a node powered off and back, its NAT state gone) is found dead after 10 s idle and three
 * unanswered probes 3 s apart, instead of Linux's 2 h 11 min. libpq and Postgres turn
 * keepalive on for every TCP connection; a replica's `pg_basebackup` from a new primary
 * waited 15 minutes on such a connection in `sf chaos`, until it was killed by hand.
 */
export const tcpKeepaliveSysctls: Readonly<Record<string, string>> = Object.freeze({
  'net.ipv4.tcp_keepalive_time': '10',
  'net.ipv4.tcp_keepalive_intvl': '3',
  'net.ipv4.tcp_keepalive_probes': '3',
});

/**
 * Docker's create options for a replica. Restart policy `no`: the agent, not Docker,
 * decides when a failed replica comes back, so a crash is always reported first.
 * Passwords go into `secretFiles`, never into the environment (see secret-files.ts).
 */
export function containerCreateOptions(
  identity: NodeIdentity,
  assignment: AssignmentRecord,
  entry: CatalogEntry,
  secret: InstanceSecret,
  replicated?: ReplicatedContainer,
): ContainerSpec {
  const runtime = entry.runtime;
  const plan = entry.plans[assignment.planName];
  if (!plan) throw new CatalogError(`plan ${assignment.planName} of service ${entry.osb.name} is not in the catalog`);
  const name = replicaResourceName(identity.node, assignment);
  const secrets = containerSecrets(identity, assignment, entry, secret, replicated !== undefined);
  const env = {
    ...runtime.env,
    ...secrets.env,
    ...replicated?.env,
    [maxConnectionsEnv]: String(plan.connections.service),
  };
  // A catalog mistake (a secret mapped to a plain variable) must not put it in the environment.
  const passwords = Object.values(secrets.secretFiles.files).filter((content) => content !== '');
  if (Object.values(env).some((value) => passwords.includes(value))) {
    throw new CatalogError(`the environment of ${name} would hold a password; refusing to create it`);
  }
  const ports = [portSpec(runtime)];
  if (replicated?.publishPort !== undefined && replicated.publishPort !== runtime.port) {
    ports.push(`${replicated.publishPort}/tcp`);
  }
  const labels = replicaLabels(identity, assignment);
  if (replicated) {
    labels[labelKeys.generation] = String(replicated.generation);
    labels[labelKeys.role] = replicated.role;
    if (replicated.role === 'replica' && assignment.upstream) {
      labels[labelKeys.upstream] = endpointText(assignment.upstream);
    }
  }
  const options: Docker.ContainerCreateOptions = {
    name,
    Image: imageOf(assignment, entry),
    Env: Object.entries(env).map(([key, value]) => `${key}=${value}`),
    Labels: labels,
    ExposedPorts: Object.fromEntries(ports.map((port) => [port, {}])),
    HostConfig: {
      Mounts: [{ Type: 'volume', Source: replicated?.volume ?? name, Target: runtime.volumePath }],
      PortBindings: Object.fromEntries(ports.map((port) => [port, [{ HostIp: identity.address, HostPort: '' }]])),
      RestartPolicy: { Name: 'no' },
      Memory: assignment.resources.memoryMb * 1024 * 1024,
      NanoCpus: assignment.resources.cpuMillis * 1_000_000,
      PidsLimit: pidsLimit(plan.connections),
      Sysctls: { ...tcpKeepaliveSysctls },
    },
  };
  if (runtime.stopSignal) options.StopSignal = runtime.stopSignal;
  return { options, secretFiles: secrets.secretFiles };
}
