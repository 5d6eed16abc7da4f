import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type BadRecordError,
  isKeySegment,
  Keyspace,
  type Logger,
  type MirrorChange,
  type RouteRecord,
} from '@service-foundry/core';
import { Admission } from './admission.js';
import type { RouterConfig } from './config.js';
import { sessionBudget } from './fd-budget.js';
import { HaproxyRoute, type TcpTarget } from './haproxy-route.js';
import { HttpLimits } from './http-limits.js';
import { type HttpRouter, startHttpRouter } from './http-router.js';
import { httpPortScope, LimitTally } from './limit-tally.js';
import type { RouterMeter } from './metrics.js';
import { RouteTable } from './route-table.js';
import { SessionRegistry } from './sessions.js';
import type { RouterStatus, RouteStatus } from './status.js';

/**
 * What makes the route table real: an HAProxy process per TCP route (haproxy-route.ts),
 * and the router's own HTTP port, whose sessions and limits it keeps here.
 */
export class DataPath {
  readonly table = new RouteTable();
  readonly #sessions = new SessionRegistry();
  readonly #tcpRoutes = new Map<string, HaproxyRoute>();
  /** The 0700 directory of the HAProxy processes' configs and sockets. */
  #runDir: string | undefined;
  #routeFiles = 0;
  readonly #closing = new Set<Promise<void>>();
  /** The last refused write per instance, until a good one arrives. */
  readonly #refused = new Map<string, string>();
  readonly #admission: Admission;
  readonly #tally: LimitTally;
  #http: HttpRouter | undefined;
  #closed = false;

  constructor(
    private readonly config: RouterConfig,
    private readonly log: Logger,
    private readonly meter?: RouterMeter,
  ) {
    const budget = sessionBudget(config.maxOpenSessions);
    if (budget.exceedsLimit) {
      log.warn(
        { maxOpenSessions: budget.maxOpenSessions, nofile: budget.nofile },
        'maxOpenSessions needs more file descriptors than RLIMIT_NOFILE allows: accepts will fail before the budget is reached',
      );
    }
    this.#admission = new Admission({
      maxOpenSessions: budget.maxOpenSessions,
      maxSessionsPerClient: config.maxSessionsPerClient,
      clientRouteShare: config.clientRouteShare,
    });
    this.#tally = new LimitTally(log, config.limitLogIntervalMs, (scope, reason) => meter?.refused(scope, reason));
  }

  get httpPort(): number | null {
    return this.#http?.port ?? null;
  }

  async startHttp(): Promise<void> {
    if (this.config.httpPort === null) return;
    this.#http = await startHttpRouter({
      listenHost: this.config.listenHost,
      port: this.config.httpPort,
      connectTimeoutMs: this.config.connectTimeoutMs,
      routes: this.table,
      sessions: this.#sessions,
      limits: new HttpLimits({
        admission: this.#admission,
        tally: this.#tally,
        idleTimeoutMs: this.config.idleTimeoutMs,
        defaultMaxSessions: this.config.defaultMaxSessions,
      }),
      log: this.log,
    });
  }

  #maxSessions(route: RouteRecord): number {
    return route.limits?.maxSessions ?? this.config.defaultMaxSessions;
  }

  #instanceIdOf(prefix: string, key: string): string | undefined {
    const tail = Keyspace.tail(prefix, key);
    const instanceId = tail[0];
    if (tail.length !== 1 || instanceId === undefined || !isKeySegment(instanceId)) {
      this.log.warn({ key }, 'ignoring a key that is not a route');
      return undefined;
    }
    return instanceId;
  }

  /**
   * A write the route codec refused: the route in force (if any) stays, and the reason is
   * reported (status `rejected` / `lastError`) until a good write or a delete arrives.
   */
  refuse(prefix: string, error: BadRecordError): void {
    if (this.#closed) return;
    const instanceId = this.#instanceIdOf(prefix, error.key);
    if (instanceId === undefined) return;
    this.#refused.set(instanceId, error.message);
    this.log.error({ instanceId, reason: error.message }, 'invalid route write ignored');
  }

  apply(prefix: string, change: MirrorChange<RouteRecord>): void {
    if (this.#closed) return;
    const instanceId = this.#instanceIdOf(prefix, change.key);
    if (instanceId === undefined) return;
    // A deleted key also retires a refused write that never became a route.
    if (!change.current) this.#refused.delete(instanceId);
    const result = this.table.offer(instanceId, change.current?.value);
    switch (result.kind) {
      case 'unchanged':
        return;
      case 'rejected':
        this.#refused.set(instanceId, result.reason);
        if (result.stale) this.log.warn({ instanceId, reason: result.reason }, 'stale route write ignored');
        else this.log.error({ instanceId, reason: result.reason }, 'invalid route write ignored');
        return;
      case 'delete': {
        // A TCP route's sessions end with its HAProxy process: as many as it last reported.
        const tcpSessions = this.#tcpRoutes.get(instanceId)?.activeSessions ?? 0;
        this.#stopTcpRoute(instanceId);
        const cut = this.#sessions.cutAll(instanceId) + tcpSessions;
        this.#tally.forget(instanceId);
        this.log.info({ instanceId, cutSessions: cut }, 'route removed');
        return;
      }
      case 'set':
        this.#refused.delete(instanceId);
        this.#applyRoute(result.route, result.previous);
    }
  }

  #applyRoute(route: RouteRecord, previous: RouteRecord | undefined): void {
    const { instanceId } = route;
    const target = { host: route.target.host, port: route.target.port, epoch: route.epoch };
    const tcpRoute = this.#tcpRoutes.get(instanceId);
    const maxSessions = this.#maxSessions(route);
    if (route.protocol === 'tcp' && tcpRoute?.port === route.port) {
      tcpRoute.retarget(target, maxSessions);
    } else {
      if (tcpRoute) this.#stopTcpRoute(instanceId);
      if (route.protocol === 'tcp') {
        const created = this.#startTcpRoute(instanceId, route.port, target, maxSessions);
        this.#tcpRoutes.set(instanceId, created);
        created.start();
      }
    }
    // Only after new connections already go to the new target: cut whatever still talks
    // to the primary of an older epoch.
    const cut = previous ? this.#sessions.cutOlderThan(instanceId, route.epoch) : 0;
    if (previous && route.epoch > previous.epoch) this.meter?.epochSwitched(instanceId);
    this.log.info(
      {
        instanceId,
        protocol: route.protocol,
        epoch: route.epoch,
        target: `${target.host}:${target.port}`,
        maxSessions,
        limitsFrom: route.limits ? 'route' : 'router default',
        // A TCP route's HAProxy cuts its old sessions itself, without a count to report.
        ...(route.protocol === 'http' ? { cutSessions: cut } : {}),
      },
      previous ? 'route changed' : 'route added',
    );
  }

  #startTcpRoute(instanceId: string, port: number, target: TcpTarget, maxSessions: number): HaproxyRoute {
    const { config, log } = this;
    this.#routeFiles += 1;
    return new HaproxyRoute({
      instanceId,
      listenHost: config.listenHost,
      port,
      target,
      maxSessions,
      perClient: (max) => this.#admission.perClient(max),
      connectTimeoutMs: config.connectTimeoutMs,
      holdWhileRefusedMs: config.holdWhileRefusedMs,
      idleTimeoutMs: config.idleTimeoutMs,
      runDir: this.#haproxyRunDir(),
      fileStem: `route-${this.#routeFiles}`,
      tally: this.#tally,
      log,
      ...(this.meter ? { meter: this.meter } : {}),
    });
  }

  #haproxyRunDir(): string {
    this.#runDir ??= mkdtempSync(join(tmpdir(), 'sf-router-'));
    return this.#runDir;
  }

  #stopTcpRoute(instanceId: string): void {
    const tcpRoute = this.#tcpRoutes.get(instanceId);
    if (!tcpRoute) return;
    this.#tcpRoutes.delete(instanceId);
    const closing = tcpRoute.close().finally(() => this.#closing.delete(closing));
    this.#closing.add(closing);
  }

  status(): RouterStatus {
    const routes: RouteStatus[] = [];
    for (const route of this.table.all()) {
      const tcpRoute = this.#tcpRoutes.get(route.instanceId);
      const http = route.protocol === 'http';
      const conflict = this.table.hostnameConflict(route.instanceId);
      const problem = http ? this.#httpProblem(conflict) : tcpRoute?.lastError;
      const inForce = http ? undefined : tcpRoute?.inForce;
      const maxSessions = inForce?.maxSessions ?? this.#maxSessions(route);
      routes.push({
        instanceId: route.instanceId,
        protocol: route.protocol,
        port: http ? null : route.port,
        hostname: http ? (route.hostname ?? null) : null,
        // A TCP route reports what its process applies, a runtime command behind the record.
        target: inForce ? { host: inForce.target.host, port: inForce.target.port } : { ...route.target },
        epoch: inForce?.target.epoch ?? route.epoch,
        activeSessions: http ? this.#sessions.count(route.instanceId) : (tcpRoute?.activeSessions ?? 0),
        limits: {
          maxSessions,
          maxSessionsPerClient: this.#admission.perClient(maxSessions),
          fromRecord: route.limits !== undefined,
        },
        limited: this.#tally.counters(route.instanceId),
        listening: http ? this.#http !== undefined && !conflict : (tcpRoute?.listening ?? false),
        lastError: problem ?? this.#refused.get(route.instanceId) ?? null,
      });
    }
    const rejected = [...this.#refused]
      .filter(([instanceId]) => !this.table.get(instanceId))
      .map(([instanceId, reason]) => ({ instanceId, reason }));
    const { maxOpenSessions, maxSessionsPerClient } = this.#admission.limits;
    return {
      httpPort: this.httpPort,
      sessions: {
        open: this.#admission.open + this.#haproxySessions(),
        maxOpenSessions,
        maxSessionsPerClient,
        idleTimeoutMs: this.config.idleTimeoutMs,
      },
      httpLimited: this.#http ? this.#tally.counters(httpPortScope) : null,
      routes,
      rejected,
    };
  }

  #haproxySessions(): number {
    let open = 0;
    for (const tcpRoute of this.#tcpRoutes.values()) open += tcpRoute.activeSessions;
    return open;
  }

  #httpProblem(conflict: string | undefined): string | undefined {
    return this.#http ? conflict : 'HTTP routing is disabled (httpPort is null)';
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const instanceId of [...this.#tcpRoutes.keys()]) this.#stopTcpRoute(instanceId);
    for (const route of this.table.all()) this.#sessions.cutAll(route.instanceId);
    await this.#http?.close();
    await Promise.all([...this.#closing]);
    if (this.#runDir) rmSync(this.#runDir, { recursive: true, force: true });
    this.#tally.close();
  }
}
