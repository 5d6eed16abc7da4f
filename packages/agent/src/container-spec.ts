import {
  type AssignmentRecord,
  type InstanceSecret,
  isKeySegment,
  type ReplicaRole,
  type ServiceRuntime,
} from '@service-foundry/core';
import type Docker from 'dockerode';

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
} as const;

export interface NodeIdentity {
  clusterId: string;
  node: string;
  /** Host address the container's port is published on. */
  address: string;
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
  /** The recipe's variables (role, upstream, credentials, replica name). */
  env: Record<string, string>;
  /** Another container port to publish on the node address (the replication port, `peerAddress: node`). */
  publishPort?: number;
}

/**
 * Docker's create options for a replica. Restart policy `no`: the agent, not Docker,
 * decides when a failed replica comes back, so a crash is always reported first.
 */
export function containerCreateOptions(
  identity: NodeIdentity,
  assignment: AssignmentRecord,
  runtime: ServiceRuntime,
  secret: InstanceSecret,
  replicated?: ReplicatedContainer,
): Docker.ContainerCreateOptions {
  const name = replicaResourceName(identity.node, assignment);
  const env = { ...runtime.env, [runtime.adminPasswordEnv]: secret.adminPassword, ...replicated?.env };
  const ports = [portSpec(runtime)];
  if (replicated?.publishPort !== undefined && replicated.publishPort !== runtime.port) {
    ports.push(`${replicated.publishPort}/tcp`);
  }
  const labels = replicaLabels(identity, assignment);
  if (replicated) {
    labels[labelKeys.generation] = String(replicated.generation);
    labels[labelKeys.role] = replicated.role;
  }
  const options: Docker.ContainerCreateOptions = {
    name,
    Image: runtime.image,
    Env: Object.entries(env).map(([key, value]) => `${key}=${value}`),
    Labels: labels,
    ExposedPorts: Object.fromEntries(ports.map((port) => [port, {}])),
    HostConfig: {
      Mounts: [{ Type: 'volume', Source: replicated?.volume ?? name, Target: runtime.volumePath }],
      PortBindings: Object.fromEntries(ports.map((port) => [port, [{ HostIp: identity.address, HostPort: '' }]])),
      RestartPolicy: { Name: 'no' },
      Memory: assignment.resources.memoryMb * 1024 * 1024,
      NanoCpus: assignment.resources.cpuMillis * 1_000_000,
    },
  };
  if (runtime.stopSignal) options.StopSignal = runtime.stopSignal;
  return options;
}
