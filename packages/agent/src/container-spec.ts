import { type AssignmentRecord, type InstanceSecret, isKeySegment, type ServiceRuntime } from '@service-foundry/core';
import type Docker from 'dockerode';

/** Docker labels that tie a container or volume to its cluster, node and replica. */
export const labelKeys = {
  cluster: 'sf.cluster',
  node: 'sf.node',
  instance: 'sf.instance',
  ordinal: 'sf.ordinal',
  service: 'sf.service',
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

/**
 * Docker's create options for a replica. Restart policy `no`: the agent, not Docker,
 * decides when a failed replica comes back, so a crash is always reported first.
 */
export function containerCreateOptions(
  identity: NodeIdentity,
  assignment: AssignmentRecord,
  runtime: ServiceRuntime,
  secret: InstanceSecret,
): Docker.ContainerCreateOptions {
  const name = replicaResourceName(identity.node, assignment);
  const env = { ...runtime.env, [runtime.adminPasswordEnv]: secret.adminPassword };
  const port = portSpec(runtime);
  const options: Docker.ContainerCreateOptions = {
    name,
    Image: runtime.image,
    Env: Object.entries(env).map(([key, value]) => `${key}=${value}`),
    Labels: replicaLabels(identity, assignment),
    ExposedPorts: { [port]: {} },
    HostConfig: {
      Mounts: [{ Type: 'volume', Source: name, Target: runtime.volumePath }],
      PortBindings: { [port]: [{ HostIp: identity.address, HostPort: '' }] },
      RestartPolicy: { Name: 'no' },
      Memory: assignment.resources.memoryMb * 1024 * 1024,
      NanoCpus: assignment.resources.cpuMillis * 1_000_000,
    },
  };
  if (runtime.stopSignal) options.StopSignal = runtime.stopSignal;
  return options;
}
