import {
  type AssignmentRecord,
  type Catalog,
  type Etcd3,
  type EventLog,
  type InstanceRecord,
  json,
  type Logger,
  type NodeAllocation,
  type PrimaryRecord,
  type RouteRecord,
  readJson,
  type Versioned,
} from '@service-foundry/core';
import type { ClusterState } from './cluster-state.js';
import { release } from './reserve.js';

/**
 * Drives each instance from placed replicas to a routable primary, and tears instances
 * down on deprovision. Every write compares the revision its decision was based on, so
 * several controllers (or a paused one that wakes up) cannot undo each other's work.
 *
 * | phase          | condition                               | action                                  |
 * |----------------|-----------------------------------------|-----------------------------------------|
 * | provisioning   | no primary, a replica is `running`      | elect it: put primary (version == 0)    |
 * | provisioning   | primary, route missing or older epoch   | put route (primary mod revision == epoch)|
 * | provisioning   | route at the primary's epoch            | phase ready, operation succeeded        |
 * | provisioning   | a replica `failed` or timeout passed    | phase failed, operation failed          |
 * | ready          | route missing or older epoch            | put route                               |
 * | deprovisioning | route or primary exists                 | delete them                             |
 * | deprovisioning | assignment desired `running`            | mark it `removed`                       |
 * | deprovisioning | agent deleted the assignment            | release capacity, delete placement      |
 * | deprovisioning | no placements left                      | delete instance, secret, port, bindings |
 */
export class Controller {
  constructor(
    private readonly client: Etcd3,
    private readonly state: ClusterState,
    private readonly catalog: Catalog,
    private readonly provisionTimeoutMs: number,
    private readonly events: EventLog,
    private readonly log: Logger,
  ) {}

  async pass(): Promise<void> {
    for (const instance of [...this.state.instances.items.values()]) {
      try {
        if (instance.value.phase === 'deprovisioning') await this.#teardown(instance);
        else if (instance.value.phase !== 'failed') await this.#converge(instance);
      } catch (error) {
        this.log.warn({ err: error, instanceId: instance.value.id }, 'controller step failed; will retry');
      }
    }
  }

  async #converge(instance: Versioned<InstanceRecord>): Promise<void> {
    const keys = this.state.keys;
    const id = instance.value.id;
    const primary = this.state.primaries.items.get(keys.primary(id));
    const statuses = this.state.statusesOf(id);
    if (!primary) {
      const candidate = statuses.find((s) => s.value.state === 'running' && s.value.host && s.value.port);
      if (candidate) {
        const record: PrimaryRecord = {
          instanceId: id,
          ordinal: candidate.value.ordinal,
          node: candidate.value.node,
          host: candidate.value.host ?? '',
          port: candidate.value.port ?? 0,
          electedAt: new Date().toISOString(),
        };
        const res = await this.client
          .if(keys.primary(id), 'Version', '==', 0)
          .and(keys.status(id, candidate.value.ordinal), 'Mod', '==', candidate.modRevision)
          .then(this.client.put(keys.primary(id)).value(json(record)))
          .commit();
        if (res.succeeded) {
          this.log.info({ instanceId: id, node: record.node, epoch: res.header.revision }, 'primary elected');
          await this.events.record('primary-elected', `replica ${record.ordinal} on ${record.node} is primary`, {
            instanceId: id,
            node: record.node,
          });
        }
        return;
      }
      if (instance.value.phase === 'provisioning') await this.#failIfStuck(instance, statuses);
      return;
    }
    const epoch = Number(primary.modRevision);
    const route = this.state.routes.items.get(keys.route(id))?.value;
    if (!route || route.epoch !== epoch) {
      const entry = this.catalog.byServiceName(instance.value.serviceName);
      const next: RouteRecord = {
        instanceId: id,
        protocol: entry?.runtime.protocol ?? 'tcp',
        port: instance.value.routerPort,
        target: { host: primary.value.host, port: primary.value.port },
        epoch,
      };
      await this.client
        .if(keys.primary(id), 'Mod', '==', primary.modRevision)
        .then(this.client.put(keys.route(id)).value(json(next)))
        .commit();
      return;
    }
    if (instance.value.phase === 'provisioning') {
      const ready: InstanceRecord = {
        ...instance.value,
        phase: 'ready',
        message: `primary on ${primary.value.node}`,
        operation: { ...instance.value.operation, state: 'succeeded', description: 'instance is ready' },
      };
      const res = await this.client
        .if(keys.instance(id), 'Mod', '==', instance.modRevision)
        .then(this.client.put(keys.instance(id)).value(json(ready)))
        .commit();
      if (res.succeeded) await this.events.record('instance-ready', 'instance is ready', { instanceId: id });
    }
  }

  async #failIfStuck(
    instance: Versioned<InstanceRecord>,
    statuses: Array<{ value: { state: string; message: string; ordinal: number } }>,
  ): Promise<void> {
    const failed = statuses.find((s) => s.value.state === 'failed');
    const age = Date.now() - Date.parse(instance.value.operation.startedAt);
    if (!failed && age < this.provisionTimeoutMs) return;
    const description = failed
      ? `replica ${failed.value.ordinal} failed: ${failed.value.message}`
      : `not ready after ${Math.round(age / 1000)} s`;
    const next: InstanceRecord = {
      ...instance.value,
      phase: 'failed',
      message: description,
      operation: { ...instance.value.operation, state: 'failed', description },
    };
    const keys = this.state.keys;
    const res = await this.client
      .if(keys.instance(instance.value.id), 'Mod', '==', instance.modRevision)
      .then(this.client.put(keys.instance(instance.value.id)).value(json(next)))
      .commit();
    if (res.succeeded) {
      this.log.warn({ instanceId: instance.value.id, description }, 'provisioning failed');
      await this.events.record('instance-failed', description, { instanceId: instance.value.id });
    }
  }

  async #teardown(instance: Versioned<InstanceRecord>): Promise<void> {
    const keys = this.state.keys;
    const id = instance.value.id;
    if (this.state.routes.items.has(keys.route(id)) || this.state.primaries.items.has(keys.primary(id))) {
      await this.client.delete().key(keys.route(id)).exec();
      await this.client.delete().key(keys.primary(id)).exec();
    }
    const placements = this.state.placementsOf(id);
    for (const placement of placements) {
      const assignmentKey = keys.assignment(placement.node, id, placement.ordinal);
      const assignment = await readJson<AssignmentRecord>(this.client, assignmentKey);
      if (assignment?.value.desired === 'running') {
        await this.client
          .if(assignmentKey, 'Mod', '==', assignment.modRevision)
          .then(this.client.put(assignmentKey).value(json({ ...assignment.value, desired: 'removed' })))
          .commit();
      } else if (!assignment) {
        const allocation = await readJson<NodeAllocation>(this.client, keys.allocation(placement.node));
        if (allocation) await release(this.client, keys, allocation, id, placement.ordinal);
        else await this.client.delete().key(keys.placement(id, placement.ordinal)).exec();
      }
    }
    if (placements.length > 0) return;
    const res = await this.client
      .if(keys.instance(id), 'Mod', '==', instance.modRevision)
      .then(
        this.client.delete().key(keys.instance(id)),
        this.client.delete().key(keys.secret(id)),
        this.client.delete().key(keys.routerPort(instance.value.routerPort)),
        this.client.delete().prefix(keys.instanceBindings(id)),
      )
      .commit();
    if (res.succeeded) {
      this.log.info({ instanceId: id }, 'instance deprovisioned');
      await this.events.record('instance-deleted', 'instance deprovisioned', { instanceId: id });
    }
  }
}
