import type { RouteProtocol } from '@service-foundry/core';
import type { LimitCounters } from './limit-tally.js';

export type { LimitCounters };

/** How one instance's route is being served right now. */
export interface RouteStatus {
  instanceId: string;
  protocol: RouteProtocol;
  /** The router port of a TCP route; `null` for HTTP routes (they share the HTTP port). */
  port: number | null;
  /** The Host header of an HTTP route; `null` for TCP routes. */
  hostname: string | null;
  /**
   * Where new sessions go, under which epoch. TCP: what the route's HAProxy process applies
   * now, a few milliseconds of runtime command behind a new record (the record's own values
   * while no process serves).
   */
  target: { host: string; port: number };
  epoch: number;
  /** Open client sessions (TCP connections, HTTP requests in flight, WebSockets). */
  activeSessions: number;
  /** The limits in force for new sessions. */
  limits: {
    /** Sessions let through at a time: the record's `limits.maxSessions`, else the router's default. */
    maxSessions: number;
    /** What one client address (IPv6: its /64) may hold of them. */
    maxSessionsPerClient: number;
    /** `false`: the record carries no limits and the router's `defaultMaxSessions` applies. */
    fromRecord: boolean;
  };
  /** Sessions refused per limit, and closed for idling, since the route appeared. */
  limited: LimitCounters;
  /** TCP: its port is bound. HTTP: the HTTP port is bound and the host name is served. */
  listening: boolean;
  /** Why the route is not (fully) served, or the last write that was refused; `null` when fine. */
  lastError: string | null;
}

/** A route write that was refused for an instance the router has no route for. */
export interface RejectedRoute {
  instanceId: string;
  reason: string;
}

export interface RouterStatus {
  /** The bound HTTP port, or `null` when HTTP routing is disabled. */
  httpPort: number | null;
  sessions: {
    /** Open TCP sessions (as their HAProxy processes last reported them) and HTTP client connections. */
    open: number;
    /** The budget of HTTP connections (configured, or derived from `RLIMIT_NOFILE`). */
    maxOpenSessions: number;
    /** What one client address may hold of HTTP connections across all HTTP routes. */
    maxSessionsPerClient: number;
    /** `0`: sessions are never closed for idling. */
    idleTimeoutMs: number;
  };
  /**
   * HTTP connections refused by the HTTP port before a request was read (`fdBudget`,
   * `clientLimit`) and connections closed idle with no request in flight; `null` when
   * HTTP routing is disabled.
   */
  httpLimited: LimitCounters | null;
  routes: RouteStatus[];
  rejected: RejectedRoute[];
}
