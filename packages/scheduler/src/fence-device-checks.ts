/**
 * Periodic health checks of the fence devices (Pacemaker's `monitor` of a stonith
 * resource): every interval, the controller runs `status` on each device of each node
 * that has devices configured and writes what they answered to `fence-checks/<node>`. A
 * device that fails its check would fail the fence a failover needs; knowing that before
 * the node dies is the point (`sf explain`, the `sf_controller_fence_device_up` metric).
 *
 * `status` only reads the power state; it never switches anything. Checks of one node run
 * device after device; nodes are checked one after another so a slow device delays only
 * the next check, never a failover (fencing runs its own agent processes).
 */

import {
  type Etcd3,
  type FenceCheckRecord,
  type FenceDeviceCheck,
  json,
  type Keyspace,
  type Logger,
} from '@service-foundry/core';
import { deviceLabel, type Fencing, runDeviceAction } from '@service-foundry/fencing';
import { Gauge, type Registry } from 'prom-client';

type Watcher = Awaited<ReturnType<ReturnType<Etcd3['watch']>['create']>>;

export interface FenceDeviceChecksOptions {
  client: Etcd3;
  keys: Keyspace;
  fencing: Fencing;
  /** The nodes to check (the controller's last known nodes). */
  nodes: () => Iterable<string>;
  intervalMs: number;
  /** Whether to check now (the leading scheduler checks; a standby's rounds do nothing). @default always */
  active?: () => boolean;
  log: Logger;
  registry?: Registry;
}

export class FenceDeviceChecks {
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;
  #watcher: Watcher | undefined;
  /** Nodes whose devices changed: checked right after the round under way. */
  readonly #changed = new Set<string>();
  readonly #last = new Map<string, FenceCheckRecord>();

  constructor(private readonly options: FenceDeviceChecksOptions) {
    const last = this.#last;
    if (options.registry) {
      new Gauge({
        name: 'sf_controller_fence_device_up',
        help: '1 when the fence device answered its last status check, 0 when it failed.',
        labelNames: ['node', 'level', 'device'],
        registers: [options.registry],
        collect() {
          this.reset();
          for (const record of last.values()) {
            for (const d of record.devices) {
              this.set({ node: record.node, level: String(d.level), device: d.device }, d.ok ? 1 : 0);
            }
          }
        },
      });
      new Gauge({
        name: 'sf_controller_fence_check_age_seconds',
        help: "Seconds since the node's fence devices were last checked.",
        labelNames: ['node'],
        registers: [options.registry],
        collect() {
          this.reset();
          for (const record of last.values()) {
            this.set({ node: record.node }, (Date.now() - Date.parse(record.checkedAt)) / 1000);
          }
        },
      });
    }
  }

  /** Checks at once, then every interval, and a node again as soon as its devices change. */
  async start(): Promise<void> {
    const { client, keys } = this.options;
    const prefix = keys.allFenceDevices();
    this.#watcher = await client.watch().prefix(prefix).create();
    this.#watcher.on('data', (data) => {
      for (const event of data.events) this.#changed.add(event.kv.key.toString().slice(prefix.length));
      if (!this.#running) {
        clearTimeout(this.#timer);
        tick();
      }
    });
    const tick = () => {
      if (this.#stopped) return;
      const only = this.#changed.size > 0 ? [...this.#changed] : undefined;
      this.#changed.clear();
      this.#running = this.checkAll(only).finally(() => {
        this.#running = undefined;
        if (!this.#stopped) this.#timer = setTimeout(tick, this.#changed.size > 0 ? 0 : this.options.intervalMs);
      });
    };
    tick();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#watcher?.cancel();
    await this.#running;
  }

  /** One round over every node (or `only` these); never throws (a failed write is logged). */
  async checkAll(only?: readonly string[]): Promise<void> {
    if (this.options.active && !this.options.active()) return;
    for (const node of only ?? [...this.options.nodes()]) {
      if (this.#stopped) return;
      try {
        const record = await this.check(node);
        if (record) this.#last.set(node, record);
        else this.#last.delete(node);
      } catch (error) {
        this.options.log.warn({ err: error, node }, 'fence device check could not run');
      }
    }
  }

  /** Checks one node's devices and writes the record; undefined when it has none. */
  async check(node: string): Promise<FenceCheckRecord | undefined> {
    const { fencing, client, keys, log } = this.options;
    const config = await fencing.store.devices(node);
    if (!config || config.levels.length === 0) {
      await client.delete().key(keys.fenceCheck(node)).exec();
      return undefined;
    }
    const ctx = {
      node,
      agents: fencing.agents,
      maxOutputBytes: fencing.options.maxOutputBytes,
      retryDelayMs: fencing.options.retryDelayMs,
      log,
    };
    const devices: FenceDeviceCheck[] = [];
    for (const [index, level] of config.levels.entries()) {
      for (const device of level.devices) {
        // A check answers within one run: retries belong to fencing, not to monitoring.
        const step = await runDeviceAction({ ...device, retries: 0 }, 'status', ctx);
        devices.push({
          level: index + 1,
          device: deviceLabel(device),
          agent: device.agent,
          ok: step.ok,
          ...(step.power ? { power: step.power } : {}),
          reason: step.reason,
          durationMs: step.durationMs,
        });
      }
    }
    const record: FenceCheckRecord = { node, checkedAt: new Date().toISOString(), devices };
    await client.put(keys.fenceCheck(node)).value(json(record)).exec();
    return record;
  }
}
