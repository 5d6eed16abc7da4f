import type { Catalog, Logger, Versioned } from '@service-foundry/core';
import type { AssignmentRead } from './assignment-watcher.js';
import { labelKeys, type NodeIdentity, type ReplicaRef, replicaResourceName } from './container-spec.js';
import type { DockerRuntime } from './docker-runtime.js';
import type { PasswordRotation } from './password-rotation.js';
import { decidePrepared } from './prepared-decisions.js';
import { decideReplicated } from './replica-decisions.js';
import type { ReplicaExecutor } from './replica-executor.js';
import { isOwnContainer, type ReplicaObserver } from './replica-observer.js';
import { newPass, type PassRunner, type ReplicaDecide, runPass } from './replica-pass.js';
import type { ReplicaTeardown } from './replica-teardown.js';
import type { Seeder } from './seeder.js';
import { decideShipped, decideStandalone } from './standalone-decisions.js';
import type { StatusWriter } from './status-writer.js';

export interface ReconcilerDeps {
  docker: DockerRuntime;
  catalog: Catalog;
  statuses: StatusWriter;
  identity: NodeIdentity;
  log: Logger;
  observer: ReplicaObserver;
  executor: ReplicaExecutor;
  teardown: ReplicaTeardown;
  seeder: Seeder;
  /** Takes a running replica's server through a password rotation. @default none (no rotation) */
  rotation?: PasswordRotation;
  /** The assignment of a replica as last seen by the watch. */
  assignmentOf: (ref: ReplicaRef) => Versioned<AssignmentRead> | undefined;
}

/**
 * Brings one replica's container in line with its assignment. Called for one replica at
 * a time (ReplicaQueue), reading the latest assignment and the container's real state on
 * every call, so any call is safe to repeat and a restarted agent adopts what it finds.
 *
 * | assignment                     | handled by                                                        |
 * |--------------------------------|-------------------------------------------------------------------|
 * | none                           | teardown: stop a running container, keep its volume               |
 * | invalid, or the name is taken  | status `failed` saying why                                        |
 * | `removed` / `stopped`          | teardown                                                          |
 * | `running` with a `seed`        | the seeder fills the volume from another node; nothing runs here; in a relocation's final round (`seed.final`) the container is created meanwhile (prepared-decisions.ts) |
 * | `running`, native replication  | decideReplicated (replica-decisions.ts)                           |
 * | `running`, volume shipping     | decideShipped (standalone-decisions.ts)                           |
 * | `running`, otherwise           | decideStandalone (standalone-decisions.ts)                        |
 *
 * A running replica goes through passes of observe → decide → execute (replica-pass.ts)
 * until a decision ends the pass; a failure on the way becomes its status. A replica left
 * running then takes on a password rotation in progress (password-rotation.ts).
 */
export class Reconciler {
  readonly #runner: PassRunner;

  constructor(private readonly deps: ReconcilerDeps) {
    this.#runner = { observe: (p) => deps.observer.observe(p), execute: (p, s) => deps.executor.execute(p, s) };
  }

  async reconcile(ref: ReplicaRef, signal: AbortSignal): Promise<void> {
    const { docker, identity, statuses, catalog, teardown, seeder } = this.deps;
    const name = replicaResourceName(identity.node, ref);
    const found = await docker.inspectContainer(name);
    const container = found && isOwnContainer(identity, found) ? found : undefined;
    const read = this.deps.assignmentOf(ref);
    if (!read) {
      this.deps.rotation?.forget(ref);
      await seeder.forget(ref);
      return teardown.unassigned(ref, container);
    }
    if (found && !container) {
      const owner = `${found.labels[labelKeys.cluster]}/${found.labels[labelKeys.node]}`;
      return statuses.set(ref, { state: 'failed', message: `container name ${name} is taken by ${owner}` });
    }
    if (!read.value.ok) {
      const problems = read.value.error.problems.join('; ');
      return statuses.set(ref, { state: 'failed', message: `invalid assignment: ${problems}` });
    }
    const value = read.value.record;
    if (value.desired !== 'running' || !value.seed) await seeder.forget(ref);
    if (value.desired === 'removed') {
      const replicated = catalog.byServiceName(value.serviceName)?.replication !== undefined;
      return teardown.remove(ref, { ...read, value }, container, replicated);
    }
    if (value.desired === 'stopped') {
      return teardown.stop(
        ref,
        container,
        value.movedTo !== undefined,
        catalog.byServiceName(value.serviceName)?.flush,
      );
    }
    try {
      const entry = catalog.byServiceName(value.serviceName);
      if (!entry) {
        return statuses.set(ref, { state: 'failed', message: `service ${value.serviceName} is not in the catalog` });
      }
      // Seeding: the volume is being filled from another node; nothing runs here yet, and the
      // replica's status belongs to whichever node runs it.
      const mode = catalog.replicationMode(value.serviceName, value.planName);
      const recipe = mode === 'native' ? entry.replication : undefined;
      if (value.seed) {
        // A standby of volume shipping may have reported a status as a primary before.
        if (statuses.current(ref)) await statuses.remove(ref);
        const seeding = seeder.seed(ref, { ...value, seed: value.seed }, entry, container, signal);
        if (!value.seed.final || container) return seeding;
        // The final round of a relocation: the container is made while the delta arrives.
        const pass = newPass({ ref, assignment: value, entry, recipe, signal });
        const { log } = this.deps;
        const preparing = runPass(
          pass,
          decidePrepared(recipe !== undefined, value.seed.final),
          this.#runner,
          log,
        ).catch((error: unknown) => {
          // Not fatal: the pass after the switch creates what is missing.
          log.warn({ instanceId: ref.instanceId, ordinal: ref.ordinal, err: error }, 'container not prepared');
        });
        await Promise.all([seeding, preparing]);
        return;
      }
      const decide: ReplicaDecide = recipe
        ? decideReplicated
        : mode === 'volume-shipping'
          ? decideShipped
          : decideStandalone;
      const pass = newPass({ ref, assignment: value, entry, recipe, container, signal });
      await runPass(pass, decide, this.#runner, this.deps.log);
      const status = statuses.current(ref);
      if (this.deps.rotation && status?.state === 'running' && status.containerId) {
        await this.deps.rotation.converge(ref, value, entry, status.containerId, mode === 'native');
      }
    } catch (error) {
      if (signal.aborted) return;
      await statuses.set(ref, {
        state: 'failed',
        message: (error as Error).message,
        ...(container ? { containerId: container.id } : {}),
      });
    }
  }
}
