/** An HTTP request in flight or a WebSocket, bound to one route epoch (TCP routes: haproxy-route.ts). */
export interface Session {
  readonly epoch: number;
  /** Cuts the client and its upstream at once. */
  cut(): void;
}

/**
 * Every open client session per instance, with the epoch it was routed under, so a new
 * epoch can cut the sessions still talking to the demoted primary (fencing on the data
 * path, invariant I1/I2).
 */
export class SessionRegistry {
  readonly #byInstance = new Map<string, Set<Session>>();

  /** Registers a session; call the returned function once the session has closed. */
  add(instanceId: string, session: Session): () => void {
    let sessions = this.#byInstance.get(instanceId);
    if (!sessions) {
      sessions = new Set();
      this.#byInstance.set(instanceId, sessions);
    }
    sessions.add(session);
    return () => {
      const current = this.#byInstance.get(instanceId);
      if (!current) return;
      current.delete(session);
      if (current.size === 0) this.#byInstance.delete(instanceId);
    };
  }

  count(instanceId: string): number {
    return this.#byInstance.get(instanceId)?.size ?? 0;
  }

  /** Cuts the sessions routed under an epoch lower than `epoch`; returns how many. */
  cutOlderThan(instanceId: string, epoch: number): number {
    return this.#cut(instanceId, (session) => session.epoch < epoch);
  }

  /** Cuts every session of the instance; returns how many. */
  cutAll(instanceId: string): number {
    return this.#cut(instanceId, () => true);
  }

  #cut(instanceId: string, select: (session: Session) => boolean): number {
    const sessions = this.#byInstance.get(instanceId);
    if (!sessions) return 0;
    let cut = 0;
    // Copy first: cutting may synchronously unregister sessions from the set.
    for (const session of [...sessions]) {
      if (!select(session)) continue;
      sessions.delete(session);
      session.cut();
      cut += 1;
    }
    if (sessions.size === 0 && this.#byInstance.get(instanceId) === sessions) this.#byInstance.delete(instanceId);
    return cut;
  }
}
