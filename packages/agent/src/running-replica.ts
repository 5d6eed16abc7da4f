import type { AssignmentRecord, EventLog, Logger, ServiceReplicationRecipe } from '@service-foundry/core';
import { type AppliedReplica, appliedStatusFields } from './applied-replicas.js';
import type { NodeIdentity, ReplicaRef } from './container-spec.js';
import type { ContainerState } from './docker-runtime.js';
import type { PrimaryClaim } from './primary-guard.js';
import type { ReplicationCommands } from './replication-commands.js';
import { sameEndpoint, sameIo } from './replication-spec.js';
import type { StatusWriter } from './status-writer.js';

/** A failed replication step is tried again this soon (and on every change). */
const retryMs = 1000;

export interface RunningReplicaDeps {
  statuses: StatusWriter;
  identity: NodeIdentity;
  events: EventLog;
  log: Logger;
  commands: ReplicationCommands;
  selfFenced: () => boolean;
  peerAddress: 'container' | 'node';
  /** Rule 2's check (primary-guard.ts), read from etcd at the moment it is asked. */
  claim: (ref: ReplicaRef, assignment: AssignmentRecord) => Promise<PrimaryClaim>;
  retryLater: (ref: ReplicaRef, ms: number) => void;
}

/**
 * Rules 4a–4d and 5 of ReplicatedReconciler's table, for a container that runs and passed
 * its readiness check: promote, follow, configure what differs from what is applied, and
 * report the result. Every step that fails becomes part of the status message (rule 4f)
 * and the replica is reconciled again a second later.
 */
export class RunningReplica {
  constructor(private readonly deps: RunningReplicaDeps) {}

  /** Rules 4a–4d and 5 on a ready container, then status `running` with what is in force. */
  async apply(
    ref: ReplicaRef,
    assignment: AssignmentRecord,
    recipe: ServiceReplicationRecipe,
    container: ContainerState,
    port: number,
    known: AppliedReplica,
  ): Promise<void> {
    const problems: string[] = [];
    const peer = this.#peer(container, recipe);
    if (peer) known.peer = peer;
    if (known.role === undefined) {
      try {
        known.role = await this.deps.commands.role(container.id, recipe);
        if (known.role === 'primary') known.mayBePrimary = true;
      } catch (error) {
        problems.push(`role unknown: ${(error as Error).message}`);
      }
    }
    if (known.role !== undefined) {
      if (assignment.role === 'primary') await this.#ensurePrimary(ref, assignment, recipe, known, problems);
      else if (known.mayBePrimary) problems.push('assigned as replica but it is primary: rebuilding it');
      else await this.#ensureReplica(assignment, recipe, known, problems);
    }
    if (assignment.io && !sameIo(known.io, assignment.io)) {
      const io = { ...assignment.io };
      await this.#run(known, problems, async () => {
        await this.deps.commands.run(known.containerId, recipe, 'configure', { ...io });
        known.io = io;
      });
    }
    await this.deps.statuses.set(ref, {
      ...appliedStatusFields(known),
      state: 'running',
      containerId: container.id,
      host: this.deps.identity.address,
      port,
      message: problems.length > 0 ? problems.join('; ') : 'ready',
    });
    if (problems.length > 0) this.deps.retryLater(ref, retryMs);
  }

  async #ensurePrimary(
    ref: ReplicaRef,
    assignment: AssignmentRecord,
    recipe: ServiceReplicationRecipe,
    known: AppliedReplica,
    problems: string[],
  ): Promise<void> {
    const epoch = assignment.epoch ?? 0;
    if (known.role === 'primary' && known.epoch === epoch) return;
    const claim = await this.deps.claim(ref, assignment);
    if (!claim.ok) {
      problems.push(known.role === 'primary' ? claim.reason : `not promoted: ${claim.reason}`);
      return;
    }
    if (known.role === 'primary') {
      known.epoch = epoch;
      return;
    }
    const { commands, events, log, identity } = this.deps;
    // Marked before the command runs, so self-fencing kills it even mid-promotion.
    known.mayBePrimary = true;
    await this.#run(known, problems, async () => {
      try {
        await commands.run(known.containerId, recipe, 'promote');
        await commands.awaitRole(known.containerId, recipe, 'primary');
      } catch (error) {
        // A failed promotion may or may not have happened: ask before forgetting the mark.
        const role = await commands.role(known.containerId, recipe).catch(() => undefined);
        if (role === 'replica') known.mayBePrimary = false;
        throw error;
      }
      known.role = 'primary';
      known.epoch = epoch;
      delete known.upstream;
      const message = `replica ${ref.instanceId}/${ref.ordinal} on node ${identity.node} promoted to primary at epoch ${epoch}`;
      log.info({ instanceId: ref.instanceId, ordinal: ref.ordinal, epoch }, message);
      await events.record('replica-promoted', message, { instanceId: ref.instanceId, node: identity.node });
    });
    if (this.deps.selfFenced()) problems.push('self-fenced during the promotion');
  }

  async #ensureReplica(
    assignment: AssignmentRecord,
    recipe: ServiceReplicationRecipe,
    known: AppliedReplica,
    problems: string[],
  ): Promise<void> {
    const upstream = assignment.upstream;
    if (!upstream) {
      if (!known.upstream) problems.push('waiting for the controller to name the upstream');
      return;
    }
    if (sameEndpoint(known.upstream, upstream)) {
      if (assignment.epoch !== undefined) known.epoch = assignment.epoch;
      return;
    }
    await this.#run(known, problems, async () => {
      await this.deps.commands.run(known.containerId, recipe, 'follow', {
        host: upstream.host,
        port: String(upstream.port),
      });
      known.upstream = { ...upstream };
      if (assignment.epoch !== undefined) known.epoch = assignment.epoch;
    });
  }

  /** Runs a replication step; its failure becomes a problem in the status (rule 4f). */
  async #run(known: AppliedReplica, problems: string[], step: () => Promise<void>): Promise<void> {
    known.busy++;
    try {
      await step();
    } catch (error) {
      problems.push((error as Error).message);
    } finally {
      known.busy--;
    }
  }

  /** Rule 5: where replicas on other nodes reach this one. */
  #peer(container: ContainerState, recipe: ServiceReplicationRecipe): { host: string; port: number } | undefined {
    if (this.deps.peerAddress === 'node') {
      const hostPort = container.publishedPorts[`${recipe.port}/tcp`];
      return hostPort ? { host: this.deps.identity.address, port: hostPort } : undefined;
    }
    return container.networkAddress ? { host: container.networkAddress, port: recipe.port } : undefined;
  }
}
