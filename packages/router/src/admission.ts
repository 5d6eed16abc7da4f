/** Why a session was refused (`routeLimit`, `clientLimit`, `fdBudget`) or closed (`idleTimeout`). */
export type LimitReason = 'routeLimit' | 'clientLimit' | 'fdBudget' | 'idleTimeout';

export interface AdmissionLimits {
  /** Sessions open at once across all routes. */
  maxOpenSessions: number;
  /** Sessions one client key may hold across all routes. */
  maxSessionsPerClient: number;
  /** Share of a route's `maxSessions` one client key may hold (at least one session). */
  clientRouteShare: number;
}

/** Gives a slot back; calling it again does nothing. */
export type Release = () => void;

function decrement(counts: Map<string, number>, key: string): void {
  const held = counts.get(key) ?? 0;
  if (held <= 1) counts.delete(key);
  else counts.set(key, held - 1);
}

function slot(release: () => void): Release {
  let released = false;
  return () => {
    if (released) return;
    released = true;
    release();
  };
}

/**
 * Counts of what is open behind every limit of the HTTP port, so that admitting or
 * releasing a session is a few Map operations whatever the number of sessions. Two
 * levels: a *connection* takes a slot of the fd budget and of its client's total; a
 * *route session* (a request in flight or a WebSocket) takes a slot of the route and of
 * its client's share of the route. TCP routes apply the same route and share limits
 * inside their HAProxy process (haproxy-config.ts), with `perClient` giving the share.
 */
export class Admission {
  #open = 0;
  readonly #byClient = new Map<string, number>();
  readonly #byRoute = new Map<string, number>();
  readonly #byRouteClient = new Map<string, number>();

  constructor(readonly limits: AdmissionLimits) {}

  /** Connections open across all routes. */
  get open(): number {
    return this.#open;
  }

  /** Route sessions open on one instance. */
  routeSessions(instanceId: string): number {
    return this.#byRoute.get(instanceId) ?? 0;
  }

  /** What one client key may hold of a route limited to `maxSessions`. */
  perClient(maxSessions: number): number {
    return Math.max(1, Math.floor(maxSessions * this.limits.clientRouteShare));
  }

  /** Takes a connection slot for `client`, or says which limit is full. */
  enterConnection(client: string): Release | LimitReason {
    if (this.#open >= this.limits.maxOpenSessions) return 'fdBudget';
    const held = this.#byClient.get(client) ?? 0;
    if (held >= this.limits.maxSessionsPerClient) return 'clientLimit';
    this.#open += 1;
    this.#byClient.set(client, held + 1);
    return slot(() => {
      this.#open -= 1;
      decrement(this.#byClient, client);
    });
  }

  /** Takes a session slot of route `instanceId` for `client`, or says which limit is full. */
  enterRoute(instanceId: string, client: string, maxSessions: number): Release | LimitReason {
    const routeHeld = this.#byRoute.get(instanceId) ?? 0;
    if (routeHeld >= maxSessions) return 'routeLimit';
    // A space cannot occur in an instance id (a key segment), so the key is unambiguous.
    const key = `${instanceId} ${client}`;
    const clientHeld = this.#byRouteClient.get(key) ?? 0;
    if (clientHeld >= this.perClient(maxSessions)) return 'clientLimit';
    this.#byRoute.set(instanceId, routeHeld + 1);
    this.#byRouteClient.set(key, clientHeld + 1);
    return slot(() => {
      decrement(this.#byRoute, instanceId);
      decrement(this.#byRouteClient, key);
    });
  }
}
