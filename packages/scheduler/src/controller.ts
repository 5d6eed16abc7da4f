import {
  type AssignmentRecord,
  assignmentCodec,
  type Catalog,
  type Etcd3,
  type EventLog,
  type InstanceRecord,
  json,
  type Logger,
  type NodeFenceRecord,
  nodeFenceCodec,
  PrefixMirror,
  type PrimaryRecord,
  type ReplicaStatus,
  type RouteRecord,
  type Versioned,
} from '@service-foundry/core';
import type { ClusterState } from './cluster-state.js';
import { defaultFailoverPolicy, type Fencer } from './controller/failover.js';
import { FailoverDriver } from './controller/failover-driver.js';
import { defaultNoRoomGraceMs, noRoomReason, provisionLacksRoom } from './controller/no-room.js';
import { type RestoreContext, restoreStep } from './controller/restore.js';
import { restoreInPlaceStep } from './controller/restore-in-place.js';
import { SwitchoverDriver } from './controller/switchover-driver.js';
import { releaseReplicas, teardownStep } from './controller/teardown.js';
import { desiredAssignments, type InstanceView } from './controller/topology.js';
import { UpdateDriver } from './controller/update-driver.js';
import { shippingAssignments } from './controller/volume-shipping.js';
import { Relocator } from './relocator.js';

export interface ControllerOptions {
  provisionTimeoutMs: number;
  /**
   * A provision fails once no node has had room for one of its replicas this long (the
   * scheduler's `noRoom`), instead of waiting for provisionTimeoutMs. @default 10000
   */
  noRoomGraceMs?: number;
  /** Runs fence devices; without one, fencing counts as failed (no devices configured). */
  fencer?: Fencer;
  /** Asks for another pass (e.g. when fencing finishes). */
  wake?: () => void;
  /**
   * Registered nodes whose agents stopped answering (node-prober.ts): a primary on one is
   * fenced without waiting for its lease to expire. @default none (the lease alone)
   */
  silentNodes?: () => ReadonlySet<string>;
}

/**
 * Drives each instance to a routable primary with its replicas following it, fails over
 * when the primary's node is lost, and tears instances down on deprovision. Every write
 * compares the revision its decision was based on (I2), so several controllers — or one
 * that was paused and wakes up — cannot undo each other's work.
 *
 * | phase          | condition                                   | action                                   |
 * |----------------|---------------------------------------------|------------------------------------------|
 * | any live       | a switchover under way                      | its state machine (switchover.ts)        |
 * | any live       | primary's node gone                         | failover state machine (failover.ts)     |
 * | any live       | assignments differ from topology.ts's table | rewrite them (compare their revisions)   |
 * | any live       | no primary, the bootstrap replica running   | elect it: put primary (version == 0)     |
 * | any live       | primary running, route missing/older epoch  | put route (primary mod revision == epoch)|
 * | provisioning   | route at epoch, all replicas running        | phase ready, operation succeeded         |
 * | provisioning   | a replica `failed` or timeout passed        | phase failed, operation failed           |
 * | provisioning   | no node has room, for noRoomGraceMs         | phase failed, saying what it needs       |
 * | failed         | still holds replicas, route or primary      | release them (teardown.ts)               |
 * | deprovisioning | —                                           | teardown.ts, step by step                |
 */
export class Controller {
  readonly #assignments: PrefixMirror<AssignmentRecord>;
  readonly #fences: PrefixMirror<NodeFenceRecord>;
  readonly #failovers: FailoverDriver;
  readonly #updates: UpdateDriver;
  /** Last position each primary reported, kept after its status vanishes with its lease. */
  readonly #primaryPositions = new Map<string, bigint>();
  /** Since when the scheduler has reported no room for a provision (see #failIfNoRoom). */
  readonly #noRoomSince = new Map<string, number>();

  readonly #relocator: Relocator;
  readonly #restoreContext: RestoreContext;
  readonly #switchovers: SwitchoverDriver;

  constructor(
    private readonly client: Etcd3,
    private readonly state: ClusterState,
    private readonly catalog: Catalog,
    private readonly events: EventLog,
    private readonly log: Logger,
    private readonly options: ControllerOptions,
  ) {
    this.#assignments = new PrefixMirror(client, assignmentCodec, state.keys.assignments(), log);
    this.#fences = new PrefixMirror(client, nodeFenceCodec, state.keys.fences(), log);
    this.#relocator = new Relocator(
      client,
      state,
      this.#assignments,
      this.#fences,
      (serviceName, planName) => catalog.replicationMode(serviceName, planName) === 'native',
      events,
      log,
    );
    this.#switchovers = new SwitchoverDriver(client, state.keys, events, log);
    this.#failovers = new FailoverDriver({
      client,
      state,
      fences: this.#fences,
      events,
      log,
      fencer: options.fencer,
      wake: () => options.wake?.(),
      transferOf: (id, ordinal, node) => this.#relocator.transferOf(id, ordinal, node),
      ...(options.silentNodes ? { silentNodes: options.silentNodes } : {}),
    });
    this.#updates = new UpdateDriver({ client, keys: state.keys, events, log, switchovers: this.#switchovers });
    this.#restoreContext = {
      client,
      keys: state.keys,
      events,
      log,
      transferOf: (id, ordinal, node) => this.#relocator.transferOf(id, ordinal, node),
    };
  }

  async start(onChange: () => void): Promise<void> {
    await Promise.all([
      this.#assignments.start(),
      this.#fences.start(),
      this.#relocator.start(onChange),
      this.#switchovers.start(onChange),
    ]);
    this.#assignments.on('change', onChange);
    this.#fences.on('change', onChange);
  }

  async close(): Promise<void> {
    await Promise.all([
      this.#assignments.close(),
      this.#fences.close(),
      this.#relocator.close(),
      this.#switchovers.close(),
    ]);
  }

  async pass(): Promise<void> {
    const liveNodes = new Set([...this.state.nodes.items.values()].map((n) => n.value.name));
    const silentNodes = this.options.silentNodes?.() ?? new Set<string>();
    for (const instance of [...this.state.instances.items.values()]) {
      const id = instance.value.id;
      try {
        if (instance.value.phase === 'deprovisioning') {
          const keys = this.state.keys;
          const hasRoute =
            this.state.routes.items.has(keys.route(id)) || this.state.primaries.items.has(keys.primary(id));
          await teardownStep(this.client, keys, instance, this.state.placementsOf(id), hasRoute, this.events, this.log);
        } else if (instance.value.phase === 'failed') {
          // A failed provision holds nothing: the platform deprovisions it later.
          const keys = this.state.keys;
          const hasRoute =
            this.state.routes.items.has(keys.route(id)) || this.state.primaries.items.has(keys.primary(id));
          await releaseReplicas(this.client, keys, id, this.state.placementsOf(id), hasRoute);
        } else if (!(await this.#failIfNoRoom(instance))) {
          await this.#converge(instance, this.#view(instance.value, liveNodes), silentNodes);
        }
      } catch (error) {
        this.log.warn({ err: error, instanceId: id }, 'controller step failed; will retry');
      }
    }
    for (const id of this.#noRoomSince.keys()) {
      if (!this.state.instances.items.has(this.state.keys.instance(id))) this.#noRoomSince.delete(id);
    }
    await this.#relocator.pass();
  }

  #view(instance: InstanceRecord, liveNodes: ReadonlySet<string>): InstanceView {
    const keys = this.state.keys;
    const placements = this.state.placementsOf(instance.id);
    const assignments = new Map<number, Versioned<AssignmentRecord>>();
    for (const p of placements) {
      const a = this.#assignments.items.get(keys.assignment(p.node, instance.id, p.ordinal));
      if (a) assignments.set(p.ordinal, a);
    }
    const statuses = new Map<number, Versioned<ReplicaStatus>>();
    for (const s of this.state.statusesOf(instance.id)) statuses.set(s.value.ordinal, s);
    const shipping = this.catalog.byServiceName(instance.serviceName)?.plans[instance.planName]?.volumeShipping;
    return {
      instance,
      placements,
      assignments,
      statuses,
      primary: this.state.primaries.items.get(keys.primary(instance.id)),
      liveNodes,
      replicated: this.catalog.replicationMode(instance.serviceName, instance.planName) === 'native',
      ...(shipping ? { shipping } : {}),
    };
  }

  async #converge(
    instance: Versioned<InstanceRecord>,
    view: InstanceView,
    silentNodes: ReadonlySet<string>,
  ): Promise<void> {
    const id = instance.value.id;
    const primary = view.primary;
    // A planned switchover (switchover.ts) steps first; the rest of the pass then follows
    // the primary key it moves, exactly as after a failover.
    if (this.#switchovers.active(id)) {
      await this.#switchovers.step({
        instance,
        view,
        route: this.state.routes.items.get(this.state.keys.route(id))?.value,
        lastPrimaryPosition: this.#primaryPositions.get(id),
      });
    }
    const policy = instance.value.failover ?? defaultFailoverPolicy;
    const silent = primary !== undefined && silentNodes.has(primary.value.node) && policy.fencing !== 'off';
    if (primary && (!view.liveNodes.has(primary.value.node) || silent)) {
      await this.#failovers.step(instance, view, this.#primaryPositions.get(id), silent);
      return;
    }
    if (await this.#failovers.settle(instance, primary)) return;
    if (primary && /^failover/.test(instance.value.message)) {
      // The primary's node is back (or a restarted controller lost its memory of the incident).
      const key = this.state.keys.instance(id);
      await this.client
        .if(key, 'Mod', '==', instance.modRevision)
        .then(this.client.put(key).value(json({ ...instance.value, message: `primary on ${primary.value.node}` })))
        .commit();
      return;
    }
    const restore = instance.value.restore;
    if (restore?.inPlace && restore.state !== 'copied') {
      await restoreInPlaceStep(this.#restoreContext, instance, view, false);
      return;
    }
    if (restore?.state === 'copying') {
      await restoreStep(this.#restoreContext, instance, view);
      return;
    }
    const primaryStatus = primary ? view.statuses.get(primary.value.ordinal)?.value : undefined;
    if (primaryStatus?.position !== undefined) this.#primaryPositions.set(id, BigInt(primaryStatus.position));

    const changes = view.shipping ? shippingAssignments(view, view.shipping.intervalSeconds) : desiredAssignments(view);
    for (const change of changes) {
      const key = this.state.keys.assignment(change.node, id, change.ordinal);
      let txn = this.client.if(key, 'Mod', '==', change.current.modRevision);
      // C2 (first-role.ts): a first role only while the primary and the status it was
      // checked against are still those read; another copy of the controller's state may lag.
      const primaryStatusRead = primary && view.statuses.get(primary.value.ordinal);
      if (change.current.value.role === undefined && change.next.role === 'replica' && primary && primaryStatusRead) {
        txn = txn
          .and(this.state.keys.primary(id), 'Mod', '==', primary.modRevision)
          .and(this.state.keys.status(id, primary.value.ordinal), 'Mod', '==', primaryStatusRead.modRevision);
      }
      await txn.then(this.client.put(key).value(json(change.next))).commit();
    }
    if (!primary) {
      await this.#elect(instance, view);
      return;
    }
    const routed = await this.#route(instance.value, view, primary, primaryStatus);
    // An update finishes only once every replica runs the instance's image.
    if (
      instance.value.phase === 'ready' &&
      !restore?.inPlace &&
      !(await this.#updates.upgrade(instance, view, this.#primaryPositions.get(id)))
    ) {
      return;
    }
    if (restore?.inPlace && instance.value.operation.state === 'in progress') {
      await restoreInPlaceStep(this.#restoreContext, instance, view, routed);
    } else if (instance.value.operation.type === 'update' && instance.value.operation.state === 'in progress') {
      await this.#updates.finish(instance, view);
    }
    if (instance.value.phase === 'provisioning') {
      const running = [...view.statuses.values()].filter((s) => s.value.state === 'running').length;
      if (routed && (!view.replicated || running >= instance.value.replicas)) await this.#markReady(instance, primary);
      else await this.#failIfStuck(instance, view);
    }
  }

  async #elect(instance: Versioned<InstanceRecord>, view: InstanceView): Promise<void> {
    const keys = this.state.keys;
    const id = instance.value.id;
    const candidate = [...view.statuses.values()].find(
      (s) =>
        s.value.state === 'running' &&
        s.value.host &&
        s.value.port &&
        (view.replicated
          ? s.value.role === 'primary' && view.assignments.get(s.value.ordinal)?.value.role === 'primary'
          : true),
    );
    if (!candidate) {
      if (instance.value.phase === 'provisioning') await this.#failIfStuck(instance, view);
      return;
    }
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
  }

  /** Publishes the route once the primary serves as primary; true when it is current. */
  async #route(
    instance: InstanceRecord,
    view: InstanceView,
    primary: Versioned<PrimaryRecord>,
    status: ReplicaStatus | undefined,
  ): Promise<boolean> {
    const keys = this.state.keys;
    const epoch = Number(primary.modRevision);
    if (status?.state !== 'running' || !status.host || !status.port) return false;
    // A replica serves writes only once its agent has applied the primary role for this
    // epoch (epoch 0: the bootstrap primary, before the first election).
    if (view.replicated && (status.role !== 'primary' || (status.epoch !== epoch && status.epoch !== 0))) return false;
    const route = this.state.routes.items.get(keys.route(instance.id))?.value;
    const target = { host: status.host, port: status.port };
    const entry = this.catalog.byServiceName(instance.serviceName);
    // The router admits at most this many client sessions (the plan's connections.router);
    // a route written before limits existed is rewritten once to carry them.
    const maxSessions = entry?.plans[instance.planName]?.connections.router;
    if (
      route &&
      route.epoch === epoch &&
      route.target.host === target.host &&
      route.target.port === target.port &&
      route.limits?.maxSessions === maxSessions
    ) {
      return true;
    }
    const next: RouteRecord = {
      instanceId: instance.id,
      protocol: entry?.runtime.protocol ?? 'tcp',
      port: instance.routerPort,
      target,
      epoch,
      ...(maxSessions === undefined ? {} : { limits: { maxSessions } }),
    };
    const res = await this.client
      .if(keys.primary(instance.id), 'Mod', '==', primary.modRevision)
      .then(this.client.put(keys.route(instance.id)).value(json(next)))
      .commit();
    if (res.succeeded && route && route.epoch !== epoch) {
      await this.events.record(
        'route-switched',
        `router now sends clients to ${target.host}:${target.port} (epoch ${epoch})`,
        {
          instanceId: instance.id,
          node: primary.value.node,
        },
      );
    }
    return false;
  }

  async #markReady(instance: Versioned<InstanceRecord>, primary: Versioned<PrimaryRecord>): Promise<void> {
    const key = this.state.keys.instance(instance.value.id);
    const ready: InstanceRecord = {
      ...instance.value,
      phase: 'ready',
      message: `primary on ${primary.value.node}`,
      operation: { ...instance.value.operation, state: 'succeeded', description: 'instance is ready' },
    };
    const res = await this.client
      .if(key, 'Mod', '==', instance.modRevision)
      .then(this.client.put(key).value(json(ready)))
      .commit();
    if (res.succeeded)
      await this.events.record('instance-ready', 'instance is ready', { instanceId: instance.value.id });
  }

  /**
   * Fails a provision no node has had room for since noRoomGraceMs (a moment of grace:
   * capacity a teardown is giving back arrives within it). True when the instance failed.
   */
  async #failIfNoRoom(instance: Versioned<InstanceRecord>): Promise<boolean> {
    const id = instance.value.id;
    const status = this.state.schedulingStatuses.items.get(this.state.keys.schedulingStatus(id))?.value;
    const replicated = this.catalog.replicationMode(instance.value.serviceName, instance.value.planName) === 'native';
    const reason = provisionLacksRoom(instance.value, status, this.state.placementsOf(id).length, replicated)
      ? noRoomReason(instance.value, this.state)
      : undefined;
    if (reason === undefined) {
      this.#noRoomSince.delete(id);
      return false;
    }
    const since = this.#noRoomSince.get(id) ?? Date.now();
    this.#noRoomSince.set(id, since);
    if (Date.now() - since < (this.options.noRoomGraceMs ?? defaultNoRoomGraceMs)) return false;
    this.#noRoomSince.delete(id);
    await this.#fail(instance, reason);
    return true;
  }

  async #failIfStuck(instance: Versioned<InstanceRecord>, view: InstanceView): Promise<void> {
    const failed = [...view.statuses.values()].find((s) => s.value.state === 'failed');
    const age = Date.now() - Date.parse(instance.value.operation.startedAt);
    if (!failed && age < this.options.provisionTimeoutMs) return;
    const description = failed
      ? `replica ${failed.value.ordinal} failed: ${failed.value.message}`
      : `not ready after ${Math.round(age / 1000)} s`;
    await this.#fail(instance, description);
  }

  /** Ends a provision as failed, saying why; the next passes release what it holds. */
  async #fail(instance: Versioned<InstanceRecord>, description: string): Promise<void> {
    const next: InstanceRecord = {
      ...instance.value,
      phase: 'failed',
      message: description,
      operation: { ...instance.value.operation, state: 'failed', description },
    };
    const key = this.state.keys.instance(instance.value.id);
    const res = await this.client
      .if(key, 'Mod', '==', instance.modRevision)
      .then(this.client.put(key).value(json(next)))
      .commit();
    if (res.succeeded) {
      this.log.warn({ instanceId: instance.value.id, description }, 'provisioning failed');
      await this.events.record('instance-failed', description, { instanceId: instance.value.id });
    }
  }
}
