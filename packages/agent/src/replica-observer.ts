import type { Endpoint, Logger, ServiceReplicationRecipe } from '@service-foundry/core';
import type { AppliedReplica, AppliedReplicas } from './applied-replicas.js';
import { labelKeys, type NodeIdentity, portSpec, replicaResourceName } from './container-spec.js';
import type { ContainerState, DockerRuntime } from './docker-runtime.js';
import type { ObservedContainer, ReplicaObservation } from './replica-observation.js';
import type { ReplicaPass } from './replica-pass.js';
import type { ReplicationCommands } from './replication-commands.js';
import { parseEndpoint } from './replication-spec.js';
import type { StatusWriter } from './status-writer.js';

export interface ReplicaObserverDeps {
  docker: DockerRuntime;
  statuses: StatusWriter;
  applied: AppliedReplicas;
  commands: ReplicationCommands;
  identity: NodeIdentity;
  log: Logger;
  /** A failed replica is restarted no sooner than half this after its failure. */
  reconcileIntervalMs: number;
  /** True while the node is self-fenced (self-fence.ts). */
  selfFenced: () => boolean;
  peerAddress: 'container' | 'node';
}

/** The replica's container if it is this agent's: same cluster, same node. */
export function isOwnContainer(identity: NodeIdentity, container: ContainerState): boolean {
  return (
    container.labels[labelKeys.cluster] === identity.clusterId && container.labels[labelKeys.node] === identity.node
  );
}

/**
 * Gathers what decisions need about one replica: its container (inspected again only after
 * an action changed it), what is applied inside it, its status and the pass's facts.
 */
export class ReplicaObserver {
  constructor(private readonly deps: ReplicaObserverDeps) {}

  async observe(pass: ReplicaPass): Promise<ReplicaObservation> {
    const { docker, identity, statuses, applied } = this.deps;
    if (pass.containerChanged) {
      const found = await docker.inspectContainer(replicaResourceName(identity.node, pass.ref));
      if (found && isOwnContainer(identity, found)) pass.container = found;
      else delete pass.container;
      pass.containerChanged = false;
    }
    const container = pass.container;
    let entry = container ? applied.of(pass.ref, container.id) : undefined;
    // Known first, even without a role: self-fencing must know every possible primary.
    if (container && !entry && pass.recipe) entry = await this.#adopt(pass, container, pass.recipe);
    const status = statuses.current(pass.ref);
    return {
      node: identity.node,
      address: identity.address,
      restartBackoffMs: this.deps.reconcileIntervalMs / 2,
      selfFenced: this.deps.selfFenced(),
      ...(container ? { container: this.#view(pass, container) } : {}),
      ...(entry ? { applied: { ...entry } } : {}),
      ...(status ? { status } : {}),
      pass: pass.facts,
    };
  }

  #view(pass: ReplicaPass, container: ContainerState): ObservedContainer {
    const servicePort = container.publishedPorts[portSpec(pass.entry.runtime)];
    const peer = pass.recipe ? this.#peer(container, pass.recipe) : undefined;
    const volume = container.volumeMounts[pass.entry.runtime.volumePath];
    const madeFor = parseEndpoint(container.labels[labelKeys.upstream]);
    return {
      id: container.id,
      running: container.running,
      ...(servicePort !== undefined ? { servicePort } : {}),
      ...(peer ? { peer } : {}),
      ...(volume !== undefined ? { volume } : {}),
      ...(container.image ? { image: container.image } : {}),
      ...(container.limits ? { limits: { ...container.limits } } : {}),
      ...(madeFor ? { madeFor } : {}),
    };
  }

  /** Rule 5: where replicas on other nodes reach this one. */
  #peer(container: ContainerState, recipe: ServiceReplicationRecipe): Endpoint | undefined {
    if (this.deps.peerAddress === 'node') {
      const hostPort = container.publishedPorts[`${recipe.port}/tcp`];
      return hostPort ? { host: this.deps.identity.address, port: hostPort } : undefined;
    }
    return container.networkAddress ? { host: container.networkAddress, port: recipe.port } : undefined;
  }

  /** A container this agent process has not seen: its labels, and its role when it runs. */
  async #adopt(
    pass: ReplicaPass,
    container: ContainerState,
    recipe: ServiceReplicationRecipe,
  ): Promise<AppliedReplica> {
    const { applied, commands, log } = this.deps;
    const { ref } = pass;
    const generation = Number(container.labels[labelKeys.generation] ?? 0);
    const known = applied.set({
      ref,
      containerId: container.id,
      serviceName: pass.assignment.serviceName,
      generation: Number.isSafeInteger(generation) ? generation : 0,
      // Without a label the container predates replication: it ran standalone, as a primary.
      mayBePrimary: container.labels[labelKeys.role] !== 'replica',
      busy: 0,
    });
    if (container.running) {
      try {
        known.role = await commands.role(container.id, recipe);
        known.mayBePrimary = known.role === 'primary';
      } catch (error) {
        log.warn(
          { err: error, instanceId: ref.instanceId, ordinal: ref.ordinal },
          'cannot read the role of a container',
        );
      }
    }
    return known;
  }
}
