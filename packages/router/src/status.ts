import type { RouteProtocol } from '@service-foundry/core';

/** How one instance's route is being served right now. */
export interface RouteStatus {
  instanceId: string;
  protocol: RouteProtocol;
  /** The router port of a TCP route; `null` for HTTP routes (they share the HTTP port). */
  port: number | null;
  /** The Host header of an HTTP route; `null` for TCP routes. */
  hostname: string | null;
  target: { host: string; port: number };
  epoch: number;
  /** Open client sessions (TCP connections, HTTP requests in flight, WebSockets). */
  activeSessions: number;
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
  routes: RouteStatus[];
  rejected: RejectedRoute[];
}
