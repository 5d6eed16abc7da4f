/**
 * Prometheus families of the router (docs/metrics.md). Labels are the instance id and its
 * router port, never a client address: a label per client would be an unbounded set.
 * Open sessions are read from the data path's status at scrape time; the rest are counted
 * where sessions open, close, fail to connect, are refused, and where routes change epoch.
 */

import { Counter, Gauge, type Registry } from 'prom-client';
import type { RouterStatus } from './status.js';

/** What the data path reports; every method is cheap (a counter increment). */
export class RouterMeter {
  readonly #sessions: Counter<'instance' | 'port'>;
  readonly #bytes: Counter<'instance' | 'port' | 'direction'>;
  readonly #connectErrors: Counter<'instance' | 'port'>;
  readonly #refused: Counter<'instance' | 'reason'>;
  readonly #epochSwitches: Counter<'instance'>;

  constructor(registry: Registry, status: () => RouterStatus) {
    const registers = [registry];
    this.#sessions = new Counter({
      name: 'sf_router_sessions_total',
      help: 'TCP sessions let through to a route target, by instance and router port.',
      labelNames: ['instance', 'port'],
      registers,
    });
    this.#bytes = new Counter({
      name: 'sf_router_bytes_total',
      help: 'Bytes carried by TCP sessions (read from HAProxy every second); direction "in" is client to service, "out" service to client.',
      labelNames: ['instance', 'port', 'direction'],
      registers,
    });
    this.#connectErrors = new Counter({
      name: 'sf_router_connect_errors_total',
      help: 'Sessions whose connection to the route target failed or timed out.',
      labelNames: ['instance', 'port'],
      registers,
    });
    this.#refused = new Counter({
      name: 'sf_router_sessions_refused_total',
      help: 'Sessions refused by a limit (routeLimit, clientLimit, fdBudget) or closed idle (idleTimeout).',
      labelNames: ['instance', 'reason'],
      registers,
    });
    this.#epochSwitches = new Counter({
      name: 'sf_router_epoch_switches_total',
      help: "Times a route's epoch rose (a new primary); older sessions are cut then.",
      labelNames: ['instance'],
      registers,
    });
    new Gauge({
      name: 'sf_router_sessions_open',
      help: 'Client sessions open now, by instance and router port (HTTP routes: port "http").',
      labelNames: ['instance', 'port'],
      registers,
      collect() {
        this.reset();
        for (const route of status().routes) {
          this.set({ instance: route.instanceId, port: String(route.port ?? 'http') }, route.activeSessions);
        }
      },
    });
    new Gauge({
      name: 'sf_router_route_epoch',
      help: 'Epoch of the route being served, by instance.',
      labelNames: ['instance'],
      registers,
      collect() {
        this.reset();
        for (const route of status().routes) this.set({ instance: route.instanceId }, route.epoch);
      },
    });
  }

  opened(instance: string, port: number, sessions = 1): void {
    this.#sessions.inc({ instance, port: String(port) }, sessions);
  }

  carried(instance: string, port: number, bytesIn: number, bytesOut: number): void {
    this.#bytes.inc({ instance, port: String(port), direction: 'in' }, bytesIn);
    this.#bytes.inc({ instance, port: String(port), direction: 'out' }, bytesOut);
  }

  connectError(instance: string, port: number, errors = 1): void {
    this.#connectErrors.inc({ instance, port: String(port) }, errors);
  }

  refused(instance: string, reason: string): void {
    this.#refused.inc({ instance, reason });
  }

  epochSwitched(instance: string): void {
    this.#epochSwitches.inc({ instance });
  }
}
