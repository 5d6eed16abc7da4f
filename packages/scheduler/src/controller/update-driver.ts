import {
  type Etcd3,
  type EventLog,
  type InstanceRecord,
  json,
  type Keyspace,
  type Logger,
  sameIo,
  type Versioned,
} from '@service-foundry/core';
import { defaultFailoverPolicy } from './failover.js';
import { decideUpdate } from './plan-change.js';
import { resizeReplica, trimLedgers } from './resize.js';
import type { SwitchoverDriver } from './switchover-driver.js';
import { releaseReplicas } from './teardown.js';
import type { InstanceView } from './topology.js';
import { decideUpgrade, imageRunProblem, upgradeRequester } from './upgrade.js';

export interface UpdateDriverDeps {
  client: Etcd3;
  keys: Keyspace;
  events: EventLog;
  log: Logger;
  switchovers: SwitchoverDriver;
}

/**
 * Carries an instance's `update` forward for the controller: the roll onto its image
 * (upgrade.ts), the steps of a plan change (plan-change.ts), then the IO check. Each write
 * compares the instance record's revision the step was decided on.
 */
export class UpdateDriver {
  /** The last upgrade step logged per instance (an upgrade outside an operation logs each once). */
  readonly #lastUpgradeStep = new Map<string, string>();

  constructor(private readonly deps: UpdateDriverDeps) {}

  /** One step of rolling the instance onto its image (upgrade.ts); true once every replica runs it. */
  async upgrade(
    instance: Versioned<InstanceRecord>,
    view: InstanceView,
    lastPrimaryPosition: bigint | undefined,
  ): Promise<boolean> {
    const { client, keys, log, switchovers } = this.deps;
    const id = instance.value.id;
    const switchover = switchovers.latest(id);
    const step = decideUpgrade({
      view,
      now: Date.now(),
      switchover: switchover?.value,
      lastPrimaryPosition,
      maxLagBytes: (instance.value.failover ?? defaultFailoverPolicy).maxLagBytes,
    });
    if (step.kind === 'settled') {
      this.#lastUpgradeStep.delete(id);
      return true;
    }
    const operation = instance.value.operation;
    if (operation.type === 'update' && operation.state === 'in progress') {
      await this.#describe(instance, step.description);
    } else if (this.#lastUpgradeStep.get(id) !== step.description) {
      log.info({ instanceId: id }, step.description);
    }
    this.#lastUpgradeStep.set(id, step.description);
    if (step.kind === 'set-image') {
      const image = instance.value.image as string;
      for (const ordinal of step.ordinals) {
        const assignment = view.assignments.get(ordinal);
        const node = view.placements.find((p) => p.ordinal === ordinal)?.node;
        if (!assignment || !node) continue;
        const key = keys.assignment(node, id, ordinal);
        await client
          .if(key, 'Mod', '==', assignment.modRevision)
          .then(client.put(key).value(json({ ...assignment.value, image })))
          .commit();
      }
    } else if (step.kind === 'switchover') {
      await switchovers.request(view, { ordinal: step.ordinal, node: step.node }, upgradeRequester, switchover);
    }
    return false;
  }

  /**
   * Carries an update forward: a plan change's steps first (controller/plan-change.ts), then
   * the IO check: done when every running replica reports the new settings in force.
   */
  async finish(instance: Versioned<InstanceRecord>, view: InstanceView): Promise<void> {
    const id = instance.value.id;
    const operation = instance.value.operation;
    // The broker takes a password rotation through its steps (it alone opens the secret).
    if (operation.request?.rotateCredentials) return;
    const step = decideUpdate(view, operation.request?.planId !== undefined, operation.pendingIo);
    if (step.kind === 'remove') {
      await this.#describe(instance, step.description);
      await releaseReplicas(this.deps.client, this.deps.keys, id, step.placements, false);
      return;
    }
    if (step.kind === 'wait') {
      await this.#describe(instance, step.description);
      return;
    }
    if (step.kind === 'resize') {
      const refusals = await this.#resize(instance.value, view, step.ordinals);
      await this.#describe(instance, refusals.length > 0 ? `waiting: ${refusals.join('; ')}` : step.description);
      return;
    }
    if (step.kind === 'apply-io') {
      const { pendingIo: _applied, ...rest } = operation;
      const next = { ...instance.value, io: step.io, operation: { ...rest, description: step.description } };
      if (await this.#write(instance, next)) {
        await this.deps.events.record('instance-update-progress', step.description, { instanceId: id });
      }
      return;
    }
    // An upgrade's request asks for no plan and no parameters (a maintenance version, or nothing).
    const request = operation.request;
    const upgraded = request !== undefined && request.planId === undefined && request.parameters === undefined;
    const imageProblem = upgraded ? imageRunProblem(view) : undefined;
    if (imageProblem !== undefined) {
      await this.#describe(instance, imageProblem);
      return;
    }
    const want = instance.value.io;
    const running = [...view.statuses.values()].filter((s) => s.value.state === 'running');
    const applied = running.every((s) => !view.replicated || sameIo(s.value.io, want));
    if (!applied || running.length === 0) return;
    // A smaller size gives its capacity back only now that every container runs with it.
    if (operation.request?.planId !== undefined) {
      const { client, keys } = this.deps;
      if (!(await trimLedgers(client, keys, id, view.placements, instance.value.resources))) return;
    }
    const description =
      operation.request?.planId !== undefined
        ? `plan ${instance.value.planName}: ${instance.value.replicas} replica(s) running, settings applied`
        : upgraded && instance.value.image !== undefined
          ? `every replica runs ${instance.value.image} (maintenance version ${instance.value.maintenanceVersion ?? 'unrecorded'})`
          : 'settings applied on every replica';
    const done: InstanceRecord = {
      ...instance.value,
      operation: { ...operation, state: 'succeeded', description },
    };
    if (await this.#write(instance, done)) {
      await this.deps.events.record('instance-updated', description, { instanceId: id });
    }
  }

  /** Resizes each replica in its node's ledger and assignment; says why any could not be. */
  async #resize(instance: InstanceRecord, view: InstanceView, ordinals: readonly number[]): Promise<string[]> {
    const { client, keys, log } = this.deps;
    const refusals: string[] = [];
    for (const ordinal of ordinals) {
      const assignment = view.assignments.get(ordinal);
      const node = view.placements.find((p) => p.ordinal === ordinal)?.node;
      if (!assignment || !node) continue;
      const outcome = await resizeReplica(client, keys, node, assignment, instance.resources);
      if (outcome.ok) log.info({ instanceId: instance.id, ordinal, node, to: instance.resources }, 'replica resized');
      else refusals.push(outcome.reason);
    }
    return refusals;
  }

  /** Progress of an update, shown by `sf service` and last_operation; written when it changes. */
  async #describe(instance: Versioned<InstanceRecord>, description: string): Promise<void> {
    if (instance.value.operation.description === description) return;
    const next = { ...instance.value, operation: { ...instance.value.operation, description } };
    if (await this.#write(instance, next)) {
      await this.deps.events.record('instance-update-progress', description, { instanceId: instance.value.id });
    }
  }

  /** Writes the instance record if nobody changed it since it was read. */
  async #write(instance: Versioned<InstanceRecord>, next: InstanceRecord): Promise<boolean> {
    const { client, keys } = this.deps;
    const key = keys.instance(instance.value.id);
    const res = await client
      .if(key, 'Mod', '==', instance.modRevision)
      .then(client.put(key).value(json(next)))
      .commit();
    return res.succeeded;
  }
}
