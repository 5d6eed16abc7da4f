/**
 * Prometheus families of the scheduler and the controller (docs/metrics.md).
 *
 * Most are read at scrape time from the watched copies of etcd the scheduler already keeps
 * (pending replicas, leader, replica lag), so they show the cluster as this process sees
 * it. Counters come from the events this process records (failovers, their duration from
 * `primary-lost` to `failover-promote`), from the placements it committed (seen on the
 * placements watch) and from the fencer it calls.
 */

import { type CountingEventLog, eldestFirst, type PlacementRecord } from '@service-foundry/core';
import type { Fencing } from '@service-foundry/fencing';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { ClusterState } from './cluster-state.js';
import type { Fencer } from './controller/failover.js';

/** Bounded classes of a pending replica's reason (the reason itself is free text). */
export function pendingReasonClass(pending: { reason: string; noRoom?: boolean }): string {
  if (pending.noRoom) return 'no_room';
  if (/fenc/i.test(pending.reason)) return 'waiting_for_fence';
  if (/label/i.test(pending.reason)) return 'labels';
  if (/zone/i.test(pending.reason)) return 'zone';
  if (/cordon|drain/i.test(pending.reason)) return 'cordoned';
  return 'no_feasible_node';
}

export interface SchedulerMetricsOptions {
  registry: Registry;
  state: ClusterState;
  events: CountingEventLog;
  /** This scheduler's name (placements it committed carry it). */
  name: string;
  mode: 'active-active' | 'leader';
}

/** Registers the families; everything after that is driven by watches, events and scrapes. */
export function registerSchedulerMetrics(options: SchedulerMetricsOptions): void {
  const { registry, state, events, name, mode } = options;
  const registers = [registry];

  const placements = new Counter({
    name: 'sf_scheduler_placements_total',
    help: 'Replicas placed by this scheduler (first placements and re-placements).',
    labelNames: ['kind'],
    registers,
  });
  const latency = new Histogram({
    name: 'sf_scheduler_placement_latency_seconds',
    help: "Seconds from an instance's creation to the commit of its replica's first placement.",
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300],
    registers,
  });
  // Placements committed from now on; a record rewritten with the same placedAt is not news.
  const since = Date.now();
  const seen = new Map<string, string>();
  state.placements.on('change', (changes) => {
    for (const { key, current } of changes) {
      const placed: PlacementRecord | undefined = current?.value;
      if (!placed) {
        seen.delete(key);
        continue;
      }
      if (placed.scheduler !== name || Date.parse(placed.placedAt) < since || seen.get(key) === placed.placedAt)
        continue;
      seen.set(key, placed.placedAt);
      const first = !placed.previousNodes?.length;
      placements.inc({ kind: first ? 'first' : 'replaced' });
      if (!first) continue;
      const instance = state.instances.items.get(state.keys.instance(placed.instanceId))?.value;
      const seconds = instance ? (Date.parse(placed.placedAt) - Date.parse(instance.createdAt)) / 1000 : Number.NaN;
      if (Number.isFinite(seconds) && seconds >= 0) latency.observe(seconds);
    }
  });

  new Gauge({
    name: 'sf_scheduler_pending_replicas',
    help: 'Replicas waiting for a node, by class of reason (scheduling status records).',
    labelNames: ['reason'],
    registers,
    collect() {
      this.reset();
      for (const { value } of state.schedulingStatuses.items.values()) {
        for (const pending of value.pending) this.inc({ reason: pendingReasonClass(pending) });
      }
    },
  });

  new Gauge({
    name: 'sf_scheduler_leader',
    help: '1 while this scheduler places (leader mode: the eldest member; active-active: every member).',
    registers,
    collect() {
      const members = eldestFirst(state.schedulers.items.values());
      const registered = members.some((m) => m.value.name === name);
      this.set(registered && (mode === 'active-active' || members[0]?.value.name === name) ? 1 : 0);
    },
  });

  new Gauge({
    name: 'sf_controller_replica_lag_bytes',
    help: "Bytes a standby's replication position is behind its primary's (positions reported by the agents).",
    labelNames: ['instance', 'ordinal', 'node'],
    registers,
    collect() {
      this.reset();
      for (const { value: primary } of state.primaries.items.values()) {
        const statuses = [...state.statuses.items.values()].filter((s) => s.value.instanceId === primary.instanceId);
        const top = statuses.find((s) => s.value.ordinal === primary.ordinal)?.value.position;
        if (top === undefined) continue;
        for (const { value } of statuses) {
          if (value.ordinal === primary.ordinal || value.position === undefined) continue;
          const lag = BigInt(top) - BigInt(value.position);
          const labels = { instance: value.instanceId, ordinal: String(value.ordinal), node: value.node };
          this.set(labels, Number(lag > 0n ? lag : 0n));
        }
      }
    },
  });

  new Gauge({
    name: 'sf_controller_nodes_ready',
    help: '1 for a node whose lease is live and that is neither fenced nor cordoned, else 0 (nodes last seen).',
    labelNames: ['node'],
    registers,
    collect() {
      this.reset();
      for (const [node] of state.lastKnownNodes) {
        const alive = state.nodes.items.has(state.keys.node(node));
        const fence = state.fences.items.get(state.keys.fence(node))?.value.state;
        const cordoned = state.nodeControls.items.get(state.keys.nodeControl(node))?.value.cordoned ?? false;
        this.set({ node }, alive && (fence === undefined || fence === 'unfenced') && !cordoned ? 1 : 0);
      }
    },
  });

  const failovers = new Counter({
    name: 'sf_controller_failovers_total',
    help: 'Primaries promoted after the old primary was lost.',
    registers,
  });
  const primaryLost = new Counter({
    name: 'sf_controller_primary_lost_total',
    help: 'Primaries whose node stopped renewing its lease.',
    registers,
  });
  const duration = new Histogram({
    name: 'sf_controller_failover_duration_seconds',
    help: 'Seconds from a primary found lost to the promotion of another replica (this controller saw both).',
    buckets: [1, 2, 5, 10, 15, 20, 30, 45, 60, 120, 300],
    registers,
  });
  const lostAt = new Map<string, number>();
  events.observe((kind, about) => {
    if (!about.instanceId) return;
    if (kind === 'primary-lost') {
      primaryLost.inc();
      lostAt.set(about.instanceId, Date.now());
    } else if (kind === 'failover-promote') {
      failovers.inc();
      const since = lostAt.get(about.instanceId);
      lostAt.delete(about.instanceId);
      if (since !== undefined) duration.observe((Date.now() - since) / 1000);
    }
  });
}

/** `sf_controller_fencing_attempts_total{level,result}`: each level run, and requests that ran no device. */
export function meteredFencer(registry: Registry, fencing: Fencing, by: string): Fencer {
  const attempts = new Counter({
    name: 'sf_controller_fencing_attempts_total',
    help: 'Fence levels run by the controller, by level and result; level "none" when no device ran.',
    labelNames: ['level', 'result'],
    registers: [registry],
  });
  return {
    async fence(node, reason) {
      try {
        const result = await fencing.fence(node, { by, reason });
        for (const level of result.history.levels) {
          attempts.inc({ level: String(level.level), result: level.ok ? 'success' : 'failure' });
        }
        if (!result.ranDevices)
          attempts.inc({ level: 'none', result: result.state === 'fenced' ? 'success' : 'failure' });
        if (result.state === 'fenced') {
          const how = result.ranDevices ? `at level ${result.level}` : result.history.detail;
          return { fenced: true, detail: `fenced ${how}` };
        }
        return { fenced: false, detail: result.reason };
      } catch (error) {
        attempts.inc({ level: 'none', result: 'error' });
        return { fenced: false, detail: `fencing could not run: ${(error as Error).message}` };
      }
    },
  };
}
