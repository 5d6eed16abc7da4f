import type { InstanceDetail, InstanceSummary, NodeView, ReplicaView, SchedulerView } from '@service-foundry/api';
import {
  allocationCodec,
  backupCodec,
  decodeKeyValues,
  type EventRecord,
  eldestFirst,
  eventCodec,
  type InstanceRecord,
  instanceCodec,
  Keyspace,
  nodeCodec,
  nodeControlCodec,
  nodeFenceCodec,
  type PlacementRecord,
  placementCodec,
  primaryCodec,
  type ReplicaStatus,
  type RouteRecord,
  readPrefix,
  readRecord,
  relocationCodec,
  routeCodec,
  schedulerMemberCodec,
  schedulingStatusCodec,
  statusCodec,
  sumAllocated,
  transferStatusCodec,
  type Versioned,
} from '@service-foundry/core';
import type { BrokerContext } from './broker-context.js';
import { routerAddresses } from './config.js';
import { pickByName } from './instance-lookup.js';
import type { ResolvedPlan } from './params-validation.js';
import { upgradeReason, upgradeTarget } from './upgrade.js';

/** Values under `prefix/<instanceId>/...`, grouped by instance id. */
function byInstance<T>(prefix: string, items: Map<string, Versioned<T>>): Map<string, Versioned<T>[]> {
  const grouped = new Map<string, Versioned<T>[]>();
  for (const [key, item] of items) {
    const [instanceId] = Keyspace.tail(prefix, key);
    if (!instanceId) continue;
    const list = grouped.get(instanceId) ?? [];
    list.push(item);
    grouped.set(instanceId, list);
  }
  return grouped;
}

/** What the instance views are built from, read in one go. */
interface ClusterView {
  instances: InstanceRecord[];
  placements: Map<string, Versioned<PlacementRecord>[]>;
  statuses: Map<string, Versioned<ReplicaStatus>[]>;
  routes: Map<string, RouteRecord>;
}

export class OperatorViews {
  constructor(private readonly ctx: BrokerContext) {}

  async #state(): Promise<ClusterView> {
    const { client, keys } = this.ctx;
    const [instances, placements, statuses, routes] = await Promise.all([
      readPrefix(client, instanceCodec, keys.instances()),
      readPrefix(client, placementCodec, keys.placements()),
      readPrefix(client, statusCodec, keys.statuses()),
      readPrefix(client, routeCodec, keys.routes()),
    ]);
    return {
      instances: [...instances.items.values()].map((i) => i.value),
      placements: byInstance(keys.placements(), placements.items),
      statuses: byInstance(keys.statuses(), statuses.items),
      routes: new Map([...routes.items.values()].map((r) => [r.value.instanceId, r.value])),
    };
  }

  #summary(instance: InstanceRecord, state: ClusterView): InstanceSummary {
    const statuses = state.statuses.get(instance.id) ?? [];
    const route = state.routes.get(instance.id);
    return {
      id: instance.id,
      name: instance.name,
      service: instance.serviceName,
      plan: instance.planName,
      phase: instance.phase,
      message: instance.message,
      operation: instance.operation,
      replicas: {
        desired: instance.replicas,
        placed: state.placements.get(instance.id)?.length ?? 0,
        running: statuses.filter((s) => s.value.state === 'running').length,
      },
      route: route
        ? {
            host: routerAddresses(this.ctx.config)[0] as string,
            hosts: [...routerAddresses(this.ctx.config)],
            port: route.port,
          }
        : null,
      createdAt: instance.createdAt,
      scope: instance.scope ?? null,
    };
  }

  async instances(): Promise<InstanceSummary[]> {
    const state = await this.#state();
    return state.instances
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt))
      .map((instance) => this.#summary(instance, state));
  }

  /** By id, or by name (409 when the name is used in several scopes): see instance-lookup.ts. */
  async instance(idOrName: string): Promise<InstanceDetail | undefined> {
    const state = await this.#state();
    const instance = state.instances.find((i) => i.id === idOrName) ?? pickByName(state.instances, idOrName);
    if (!instance) return undefined;
    const { client, keys } = this.ctx;
    const [primary, bindings, scheduling, relocations, backups, transfers] = await Promise.all([
      readRecord(client, primaryCodec, keys.primary(instance.id)),
      this.ctx.bindings.list(instance.id),
      readRecord(client, schedulingStatusCodec, keys.schedulingStatus(instance.id)),
      readPrefix(client, relocationCodec, keys.instanceRelocations(instance.id)),
      readPrefix(client, backupCodec, keys.instanceBackups(instance.id)),
      readPrefix(client, transferStatusCodec, `${keys.transfers()}${instance.id}/`),
    ]);
    const shippingPlan = this.ctx.catalog.byServiceName(instance.serviceName)?.plans[instance.planName]?.volumeShipping;
    const standbys = shippingPlan
      ? [...transfers.items.values()]
          .map(({ value: t }) => t)
          .filter((t) => t.ordinal !== primary?.value.ordinal)
          .sort((a, b) => a.ordinal - b.ordinal)
          .map((t) => ({
            ordinal: t.ordinal,
            node: t.node,
            from: t.from.node,
            copiedAt: t.copiedAt ?? null,
            snapshots: t.snapshots ?? 0,
            state: t.state,
          }))
      : [];
    const newest = <T>(items: Map<string, Versioned<T>>, at: (value: T) => string): T | null =>
      [...items.values()].map((i) => i.value).sort((a, b) => at(b).localeCompare(at(a)))[0] ?? null;
    const placements = new Map((state.placements.get(instance.id) ?? []).map((p) => [p.value.ordinal, p.value]));
    const statuses = new Map((state.statuses.get(instance.id) ?? []).map((s) => [s.value.ordinal, s.value]));
    const ordinals = new Set([...Array(instance.replicas).keys(), ...placements.keys(), ...statuses.keys()]);
    const replicaDetails = [...ordinals]
      .sort((a, b) => a - b)
      .map((ordinal): ReplicaView => {
        const placement = placements.get(ordinal);
        const status = statuses.get(ordinal);
        const standby = standbys.find((s) => s.ordinal === ordinal && s.node === placement?.node);
        const standbyMessage = standby
          ? `standby: copy of ${standby.from} every ${shippingPlan?.intervalSeconds} s, last complete ${standby.copiedAt ?? 'never'}`
          : undefined;
        return {
          ordinal,
          node: status?.node ?? placement?.node ?? null,
          state: status?.state ?? (standby ? 'standby' : placement ? 'placed' : 'pending'),
          host: status?.host ?? null,
          port: status?.port ?? null,
          message: status?.message ?? standbyMessage ?? (placement ? 'waiting for the agent' : 'waiting for a node'),
          role: status?.role ?? null,
          position: status?.position ?? null,
          io: status?.io ?? null,
        };
      });
    return {
      ...this.#summary(instance, state),
      replicaDetails,
      primary: primary
        ? { node: primary.value.node, ordinal: primary.value.ordinal, epoch: Number(primary.modRevision) }
        : null,
      bindings: bindings
        .sort((a, b) => a.createdAt.localeCompare(b.createdAt))
        .map(({ id, name, username, createdAt }) => ({ id, name, username, createdAt })),
      scheduling: scheduling
        ? {
            desired: scheduling.value.desired,
            placed: scheduling.value.placed,
            pending: scheduling.value.pending,
            updatedAt: scheduling.value.updatedAt,
          }
        : null,
      io: instance.io ?? null,
      failover: instance.failover ?? null,
      relocation: newest(relocations.items, (r) => r.updatedAt),
      // The newest request; ids (which start with their UTC time) break ties.
      backup: newest(backups.items, (b) => `${b.requestedAt} ${b.id}`),
      restore: instance.restore ?? null,
      shipping: shippingPlan ? { intervalSeconds: shippingPlan.intervalSeconds, standbys } : null,
      maintenance: maintenanceView(instance, this.ctx.plans.find(instance.serviceId, instance.planId), [
        ...statuses.values(),
      ]),
    };
  }

  /** The live schedulers, eldest (the leader) first. */
  async schedulers(): Promise<SchedulerView[]> {
    const { client, keys } = this.ctx;
    const members = eldestFirst((await readPrefix(client, schedulerMemberCodec, keys.schedulers())).items.values());
    return members.map((m, index) => ({ ...m.value, leader: index === 0 }));
  }

  async nodes(): Promise<NodeView[]> {
    const { client, keys } = this.ctx;
    const [nodes, allocations, statuses, controls, fences] = await Promise.all([
      readPrefix(client, nodeCodec, keys.nodes()),
      readPrefix(client, allocationCodec, keys.allocations()),
      readPrefix(client, statusCodec, keys.statuses()),
      readPrefix(client, nodeControlCodec, keys.nodeControls()),
      readPrefix(client, nodeFenceCodec, keys.fences()),
    ]);
    const controlOf = new Map([...controls.items.values()].map((c) => [c.value.node, c.value]));
    const fenceOf = new Map([...fences.items.values()].map((f) => [f.value.node, f.value.state]));
    const records = new Map([...nodes.items.values()].map((n) => [n.value.name, n.value]));
    const ledgers = new Map([...allocations.items.values()].map((a) => [a.value.node, a.value]));
    const stateOf = new Map(
      [...statuses.items.values()].map((s) => [`${s.value.instanceId}/${s.value.ordinal}`, s.value]),
    );
    const names = [...new Set([...records.keys(), ...ledgers.keys(), ...controlOf.keys()])].sort();
    return names.map((name): NodeView => {
      const record = records.get(name);
      const control = controlOf.get(name);
      const replicas = Object.values(ledgers.get(name)?.replicas ?? {});
      return {
        name,
        alive: record !== undefined,
        address: record?.address ?? null,
        labels: record?.labels ?? {},
        capacity: record?.capacity ?? null,
        allocated: sumAllocated(ledgers.get(name)?.replicas ?? {}),
        replicas: replicas.map((r) => {
          const status = stateOf.get(`${r.instanceId}/${r.ordinal}`);
          return {
            instanceId: r.instanceId,
            ordinal: r.ordinal,
            resources: r.resources,
            state: status && status.node === name ? status.state : null,
          };
        }),
        control: control
          ? {
              cordoned: control.cordoned,
              draining: control.draining,
              reason: control.reason,
              by: control.by,
              updatedAt: control.updatedAt,
            }
          : null,
        fence: fenceOf.get(name) ?? null,
      };
    });
  }

  /** The newest `limit` events, oldest first (as a terminal reads them). */
  async events(limit: number): Promise<EventRecord[]> {
    const res = await this.ctx.client
      .getAll()
      .prefix(this.ctx.keys.events())
      .sort('Key', 'Descend')
      .limit(limit)
      .exec();
    // A malformed event is skipped (and logged) rather than failing the whole listing.
    const { items } = decodeKeyValues(eventCodec, res.kvs, this.ctx.log);
    return [...items.values()].map((item) => item.value).reverse();
  }
}

/**
 * The version and image an instance runs against the ones its plan offers now (see
 * InstanceDetail.maintenance), and why an upgrade would change anything (upgrade.ts).
 */
function maintenanceView(
  instance: InstanceRecord,
  plan: ResolvedPlan | undefined,
  statuses: readonly ReplicaStatus[],
): InstanceDetail['maintenance'] {
  const target = plan ? upgradeTarget(plan) : undefined;
  const reason = target ? upgradeReason(instance, target, statuses) : undefined;
  return {
    running: instance.maintenanceVersion ?? null,
    offered: target?.version ?? null,
    runningImage: instance.image ?? null,
    offeredImage: target?.image ?? null,
    upgradeAvailable: reason !== undefined,
    reason: reason ?? null,
  };
}
