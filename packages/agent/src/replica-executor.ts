import type { Etcd3, EventLog, Keyspace, Logger } from '@service-foundry/core';
import { type AppliedReplica, type AppliedReplicas, appliedStatusFields } from './applied-replicas.js';
import type { ContainerLifecycle } from './container-lifecycle.js';
import { applyLimits } from './container-limits.js';
import {
  containerCreateOptions,
  imageOf,
  labelKeys,
  type NodeIdentity,
  type ReplicaRef,
  replicaLabels,
  replicaResourceName,
} from './container-spec.js';
import type { DockerRuntime } from './docker-runtime.js';
import { checkPrimaryClaim } from './primary-guard.js';
import type { ReplicaAction, ReplicaStep, ReplicatedCreate } from './replica-actions.js';
import type { ReplicationStep } from './replica-observation.js';
import type { ReplicaPass } from './replica-pass.js';
import { currentReplicaVolume } from './replica-volumes.js';
import type { ReplicationCommands } from './replication-commands.js';
import { replicationEnv } from './replication-spec.js';
import type { StatusWriter } from './status-writer.js';

export interface ReplicaExecutorDeps {
  client: Etcd3;
  keys: Keyspace;
  docker: DockerRuntime;
  statuses: StatusWriter;
  identity: NodeIdentity;
  events: EventLog;
  log: Logger;
  lifecycle: ContainerLifecycle;
  applied: AppliedReplicas;
  commands: ReplicationCommands;
  /** True while the node is self-fenced (self-fence.ts): a primary claim is refused. */
  selfFenced: () => boolean;
  /**
   * Why this node may not take over an instance now (a failsafe promise, failsafe-rule.ts
   * G1/G2) and for how long; undefined when nothing holds it. @default never held
   */
  failsafeHold?: (instanceId: string) => { reason: string; remainingMs: number } | undefined;
  peerAddress: 'container' | 'node';
  retryLater: (ref: ReplicaRef, ms: number) => void;
}

/**
 * Carries out the actions decisions return (replica-actions.ts), in order, and records what
 * it finds in the pass's facts: claims, prerequisites, readiness, the outcome of each
 * replication step. It decides nothing; a Docker or etcd failure ends the pass (the
 * reconciler reports it), a failed replication command becomes a fact (rule 4f).
 */
export class ReplicaExecutor {
  constructor(private readonly deps: ReplicaExecutorDeps) {}

  async execute(pass: ReplicaPass, step: ReplicaStep): Promise<void> {
    for (const action of step.actions) await this.#do(pass, action);
  }

  async #do(pass: ReplicaPass, action: ReplicaAction): Promise<void> {
    const { docker, statuses, log, identity, applied } = this.deps;
    const { ref } = pass;
    const where = { instanceId: ref.instanceId, ordinal: ref.ordinal };
    switch (action.kind) {
      case 'write-status':
        return statuses.set(ref, action.status);
      case 'warn':
        log.warn(where, action.message);
        return;
      case 'event':
        log.warn(where, action.message);
        await this.deps.events.record(action.event, action.message, {
          instanceId: ref.instanceId,
          node: identity.node,
        });
        return;
      case 'retry-after':
        this.deps.retryLater(ref, action.ms);
        return;
      case 'read-claim': {
        const { client, keys } = this.deps;
        const hold = action.epoch > 0 ? this.deps.failsafeHold?.(ref.instanceId) : undefined;
        const claim = await checkPrimaryClaim(
          client,
          keys,
          identity.node,
          ref,
          action.epoch,
          this.deps.selfFenced(),
          hold?.reason,
        );
        // Tried again as soon as the promise ends, not at the next periodic pass.
        if (hold) this.deps.retryLater(ref, hold.remainingMs + 50);
        pass.facts.claims[action.purpose] = claim;
        return;
      }
      case 'look-up-prerequisites':
        return this.#lookUpPrerequisites(pass, action.generation);
      case 'probe-role':
        return this.#probeRole(pass, this.#applied(pass, action.containerId));
      case 'ensure-volume': {
        const labels = replicaLabels(identity, pass.assignment);
        if (action.generation !== undefined) labels[labelKeys.generation] = String(action.generation);
        if (action.rebuildEpoch !== undefined) labels[labelKeys.rebuildEpoch] = String(action.rebuildEpoch);
        if (await docker.ensureVolume(action.name, labels)) pass.createdVolumes.add(action.name);
        return;
      }
      case 'create-container':
        return this.#create(pass, action.volume, action.replicated);
      case 'start':
        log.info({ ...where, role: pass.assignment.role }, 'starting container');
        pass.containerChanged = true;
        await docker.startContainer(action.containerId);
        pass.facts.started = action.containerId;
        return;
      case 'stop':
        pass.containerChanged = true;
        return docker.stopContainer(action.containerId, action.timeoutSeconds);
      case 'kill':
        pass.containerChanged = true;
        return docker.killContainer(action.containerId);
      case 'remove-container':
        pass.containerChanged = true;
        return docker.removeContainer(action.containerId);
      case 'await-ready':
        return this.#awaitReady(pass, action.containerId);
      case 'report-exit': {
        const container = pass.container?.id === action.containerId ? pass.container : undefined;
        return this.deps.lifecycle.reportExit(ref, container, action.containerId, action.cause);
      }
      case 'promote':
        return this.#promote(pass, this.#applied(pass, action.containerId), action.epoch);
      case 'follow': {
        const known = this.#applied(pass, action.containerId);
        const { upstream, epoch } = action;
        return this.#replicationStep(pass, known, 'follow', async () => {
          await this.deps.commands.run(known.containerId, this.#recipe(pass), 'follow', {
            host: upstream.host,
            port: String(upstream.port),
          });
          known.upstream = { ...upstream };
          if (epoch !== undefined) known.epoch = epoch;
        });
      }
      case 'configure': {
        const known = this.#applied(pass, action.containerId);
        const io = { ...action.io };
        return this.#replicationStep(pass, known, 'configure', async () => {
          await this.deps.commands.run(known.containerId, this.#recipe(pass), 'configure', { ...io });
          known.io = io;
        });
      }
      case 'set-limits': {
        const before = pass.container?.id === action.containerId ? pass.container : undefined;
        const outcome = await applyLimits(docker, action.containerId, action.limits, before);
        pass.facts.tried.limits = outcome;
        pass.containerChanged = true;
        if (outcome.ok) {
          log.info({ ...where, from: before?.limits, to: action.limits }, 'container limits changed in place');
        }
        return;
      }
      case 'note': {
        const known = this.#applied(pass, action.containerId) as unknown as Record<string, unknown>;
        for (const [field, value] of Object.entries(action.changes)) {
          if (value === undefined) delete known[field];
          else known[field] = value;
        }
        return;
      }
      case 'forget':
        applied.delete(ref);
        // The steps tried on the removed container say nothing of the next one.
        pass.facts.tried = {};
        return;
      case 'track-primary':
        applied.set({
          ref,
          containerId: action.containerId,
          serviceName: pass.assignment.serviceName,
          generation: 0,
          role: 'primary',
          mayBePrimary: true,
          busy: 0,
          ...(action.epoch !== undefined ? { epoch: action.epoch } : {}),
        });
        return;
    }
  }

  #applied(pass: ReplicaPass, containerId: string): AppliedReplica {
    const known = this.deps.applied.of(pass.ref, containerId);
    if (!known) throw new Error(`nothing is known as applied in container ${containerId}`);
    return known;
  }

  #recipe(pass: ReplicaPass) {
    if (!pass.recipe) throw new Error(`service ${pass.assignment.serviceName} has no replication recipe`);
    return pass.recipe;
  }

  /** Image, then secret, then volume: each looked at only when the one before is there. */
  async #lookUpPrerequisites(pass: ReplicaPass, generation: number | undefined): Promise<void> {
    const { docker, identity, lifecycle } = this.deps;
    const image = imageOf(pass.assignment, pass.entry);
    if (!(await docker.hasImage(image))) {
      pass.facts.prerequisites = { kind: 'image-missing', image };
      return;
    }
    const secret = await lifecycle.readSecret(pass.ref);
    if (secret === 'missing' || secret === 'invalid') {
      pass.facts.prerequisites = { kind: secret === 'missing' ? 'secret-missing' : 'secret-invalid' };
      return;
    }
    pass.secret = secret;
    const volume =
      generation === undefined
        ? replicaResourceName(identity.node, pass.ref)
        : await currentReplicaVolume(docker, identity, pass.ref, generation);
    pass.facts.prerequisites = { kind: 'ready', volume };
  }

  async #create(pass: ReplicaPass, volume: string, replicated: ReplicatedCreate | undefined): Promise<void> {
    const { docker, identity, applied, peerAddress } = this.deps;
    const { assignment, entry, secret } = pass;
    if (!secret) throw new Error('create-container before the prerequisites were looked up');
    pass.containerChanged = true;
    if (!replicated) {
      await docker.createContainer(containerCreateOptions(identity, assignment, entry, secret));
      return;
    }
    const recipe = this.#recipe(pass);
    const { role, generation, epoch, upstream } = replicated;
    const id = await docker.createContainer(
      containerCreateOptions(identity, assignment, entry, secret, {
        role,
        generation,
        volume,
        env: replicationEnv(recipe, assignment, role, secret),
        ...(peerAddress === 'node' ? { publishPort: recipe.port } : {}),
      }),
    );
    applied.set({
      ref: pass.ref,
      containerId: id,
      serviceName: assignment.serviceName,
      generation,
      role,
      mayBePrimary: role === 'primary',
      busy: 0,
      ...(epoch !== undefined ? { epoch } : {}),
      // The environment's upstream is what a replica clones from on an empty volume. On a
      // volume that held data the data decides (both catalog images keep their own record
      // of what they follow), so the upstream is unknown until a `follow` sets it.
      ...(upstream && pass.createdVolumes.has(volume) ? { upstream: { ...upstream } } : {}),
    });
  }

  async #awaitReady(pass: ReplicaPass, containerId: string): Promise<void> {
    const { lifecycle, applied } = this.deps;
    const known = pass.recipe ? applied.of(pass.ref, containerId) : undefined;
    const extra = known ? () => appliedStatusFields(known) : undefined;
    const ready = await lifecycle.awaitReady(
      pass.ref,
      containerId,
      pass.entry.runtime,
      pass.signal,
      extra,
      pass.containerChanged ? undefined : pass.container,
    );
    if (!ready) {
      pass.facts.readiness = { ready: false };
      return;
    }
    pass.container = ready.container;
    pass.containerChanged = false;
    // A follow that failed before readiness (rule 4g) says nothing of the server now ready.
    if (pass.facts.tried.follow?.ok === false) delete pass.facts.tried.follow;
    pass.facts.readiness = { ready: true, port: ready.port };
  }

  async #probeRole(pass: ReplicaPass, known: AppliedReplica): Promise<void> {
    try {
      known.role = await this.deps.commands.role(known.containerId, this.#recipe(pass));
      if (known.role === 'primary') known.mayBePrimary = true;
      pass.facts.tried.role = { ok: true };
    } catch (error) {
      pass.facts.tried.role = { ok: false, error: (error as Error).message };
    }
  }

  async #promote(pass: ReplicaPass, known: AppliedReplica, epoch: number): Promise<void> {
    const { commands, events, log, identity } = this.deps;
    const { ref } = pass;
    const recipe = this.#recipe(pass);
    // Marked before the command runs, so self-fencing kills it even mid-promotion.
    known.mayBePrimary = true;
    await this.#replicationStep(pass, known, 'promote', async () => {
      try {
        // The catalog's promote exits 0 only once the server is primary: no second probe.
        await commands.run(known.containerId, recipe, 'promote');
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
  }

  /** Runs a replication command; the position reporter stays away meanwhile, a failure becomes a fact (rule 4f). */
  async #replicationStep(
    pass: ReplicaPass,
    known: AppliedReplica,
    step: ReplicationStep,
    run: () => Promise<void>,
  ): Promise<void> {
    known.busy++;
    try {
      await run();
      pass.facts.tried[step] = { ok: true };
    } catch (error) {
      pass.facts.tried[step] = { ok: false, error: (error as Error).message };
    } finally {
      known.busy--;
    }
  }
}
