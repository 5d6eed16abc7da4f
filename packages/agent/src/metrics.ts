/**
 * Prometheus families of an agent (docs/metrics.md). Per replica of this node (labels
 * instance id and ordinal, bounded by what the node runs): state, role, epoch,
 * replication position and its age, restarts; per node: volume bytes sent and received,
 * self-fence events and state, and the age of the last confirmed lease renewal.
 *
 * The replica families are read at scrape time from the statuses this agent keeps for
 * etcd; restarts are seen as status transitions (a failed replica starting again). Lag
 * against the primary needs the primary's position, which only the controller sees:
 * `sf_controller_replica_lag_bytes`.
 */

import type { CountingEventLog, Etcd3, Keyspace, Logger } from '@service-foundry/core';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { ReplicaRef } from './container-spec.js';
import { type StatusUpdate, StatusWriter } from './status-writer.js';

/** A {@link StatusWriter} that counts restarts: a replica going from `failed` back to starting. */
export class MeteredStatusWriter extends StatusWriter {
  readonly #restarts: Counter<'instance' | 'ordinal'>;

  constructor(
    registry: Registry,
    client: Etcd3,
    keys: Keyspace,
    node: string,
    leaseId: () => Promise<string>,
    log: Logger,
  ) {
    super(client, keys, node, leaseId, log);
    this.#restarts = new Counter({
      name: 'sf_agent_replica_restarts_total',
      help: 'Times a failed replica was started again by this agent.',
      labelNames: ['instance', 'ordinal'],
      registers: [registry],
    });
  }

  override async set(ref: ReplicaRef, update: StatusUpdate): Promise<void> {
    const before = this.current(ref)?.state;
    if (before === 'failed' && (update.state === 'starting' || update.state === 'creating')) {
      this.#restarts.inc({ instance: ref.instanceId, ordinal: String(ref.ordinal) });
    }
    await super.set(ref, update);
  }
}

export interface AgentMetricsSources {
  registry: Registry;
  statuses: StatusWriter;
  events: CountingEventLog;
  /** ms since the epoch of the last confirmed lease keepalive (0: none yet). */
  lastRenewedAt: () => number;
  selfFenced: () => boolean;
  /** Local primaries the failsafe keeps past the fence point now. @default none */
  failsafeKept?: () => number;
  /** Instances this node promised, now, not to take over. @default none */
  failsafePromised?: () => number;
}

/** What the volume server and the seeder report after each copy. */
export interface TransferMeter {
  transferred(direction: 'sent' | 'received', bytes: number, wireBytes: number): void;
}

/** Registers the agent's families; returns the meter the volume server and seeder call. */
export function registerAgentMetrics(sources: AgentMetricsSources): TransferMeter {
  const { registry, statuses } = sources;
  const registers = [registry];
  const replicas = () =>
    statuses.known().flatMap((ref) => {
      const status = statuses.current(ref);
      return status ? [{ labels: { instance: ref.instanceId, ordinal: String(ref.ordinal) }, status }] : [];
    });

  new Gauge({
    name: 'sf_agent_replica_state',
    help: "1 for the replica's current state (creating, starting, running, failed, removing, stopped).",
    labelNames: ['instance', 'ordinal', 'state'],
    registers,
    collect() {
      this.reset();
      for (const { labels, status } of replicas()) this.set({ ...labels, state: status.state }, 1);
    },
  });
  new Gauge({
    name: 'sf_agent_replica_role',
    help: '1 for the role applied inside the replica (primary, replica).',
    labelNames: ['instance', 'ordinal', 'role'],
    registers,
    collect() {
      this.reset();
      for (const { labels, status } of replicas()) if (status.role) this.set({ ...labels, role: status.role }, 1);
    },
  });
  new Gauge({
    name: 'sf_agent_replica_epoch',
    help: 'Epoch applied inside the replica (the primary record revision it follows).',
    labelNames: ['instance', 'ordinal'],
    registers,
    collect() {
      this.reset();
      for (const { labels, status } of replicas()) if (status.epoch !== undefined) this.set(labels, status.epoch);
    },
  });
  new Gauge({
    name: 'sf_agent_replica_position_bytes',
    help: 'Replication position (Postgres: WAL LSN in bytes; Redis: replication offset).',
    labelNames: ['instance', 'ordinal'],
    registers,
    collect() {
      this.reset();
      for (const { labels, status } of replicas()) {
        if (status.position !== undefined) this.set(labels, Number(status.position));
      }
    },
  });
  new Gauge({
    name: 'sf_agent_replica_position_age_seconds',
    help: 'Seconds since the replication position was last read from the replica.',
    labelNames: ['instance', 'ordinal'],
    registers,
    collect() {
      this.reset();
      for (const { labels, status } of replicas()) {
        if (status.positionAt) this.set(labels, Math.max(0, (Date.now() - Date.parse(status.positionAt)) / 1000));
      }
    },
  });
  new Gauge({
    name: 'sf_agent_lease_renewal_age_seconds',
    help: 'Seconds since etcd last confirmed the node lease (NaN before the first renewal).',
    registers,
    collect() {
      const at = sources.lastRenewedAt();
      this.set(at > 0 ? (Date.now() - at) / 1000 : Number.NaN);
    },
  });
  new Gauge({
    name: 'sf_agent_self_fenced',
    help: '1 while the node is self-fenced (its primaries killed after losing its lease).',
    registers,
    collect() {
      this.set(sources.selfFenced() ? 1 : 0);
    },
  });
  new Gauge({
    name: 'sf_agent_failsafe_kept_primaries',
    help: 'Local primaries kept past the fence point on their replicas’ failsafe promises, or for having no other replica (etcd unreachable).',
    registers,
    collect() {
      this.set(sources.failsafeKept?.() ?? 0);
    },
  });
  new Gauge({
    name: 'sf_agent_failsafe_promises',
    help: 'Instances this node has promised, now, not to take over from their primary.',
    registers,
    collect() {
      this.set(sources.failsafePromised?.() ?? 0);
    },
  });
  const selfFences = new Counter({
    name: 'sf_agent_self_fence_events_total',
    help: 'Times this node fenced itself (lease about to expire).',
    registers,
  });
  sources.events.observe((kind) => {
    if (kind === 'node-self-fenced') selfFences.inc();
  });
  const bytes = new Counter({
    name: 'sf_agent_transfer_bytes_total',
    help: 'File bytes of volume copies (replica seeding, relocation, restore, backup) by direction.',
    labelNames: ['direction'],
    registers,
  });
  const wire = new Counter({
    name: 'sf_agent_transfer_wire_bytes_total',
    help: 'HTTP body bytes of volume copies by direction (what crossed the network).',
    labelNames: ['direction'],
    registers,
  });
  return {
    transferred(direction, fileBytes, wireBytes) {
      bytes.inc({ direction }, fileBytes);
      wire.inc({ direction }, wireBytes);
    },
  };
}
