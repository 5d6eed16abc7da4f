import { createServer, type Server, type Socket } from 'node:net';
import type { Logger } from '@service-foundry/core';
import type { Admission } from './admission.js';
import { clientKey } from './client-key.js';
import type { LimitTally } from './limit-tally.js';
import type { RouterMeter } from './metrics.js';
import { logThisFailure, retryDelayMs } from './retry-backoff.js';
import type { SessionRegistry } from './sessions.js';
import { type Bridge, bridgeToTarget, type TcpTarget } from './tcp-session.js';

export interface TcpListenerOptions {
  instanceId: string;
  listenHost: string;
  port: number;
  target: TcpTarget;
  /** Client sessions let through to the target at a time. */
  maxSessions: number;
  connectTimeoutMs: number;
  /** See RouterOptions.holdWhileRefusedMs. */
  holdWhileRefusedMs: number;
  idleTimeoutMs: number;
  sessions: SessionRegistry;
  admission: Admission;
  tally: LimitTally;
  log: Logger;
  /** @default undefined (no metrics) */
  meter?: RouterMeter;
}

interface HeldClient {
  release: () => void;
  timer: NodeJS.Timeout;
}

/**
 * The listening socket of one TCP route. A port that cannot be bound (another process or
 * route holds it) is retried with backoff for as long as the route exists; the failure is
 * visible in `lastError`, never fatal.
 *
 * Once a connection to the target failed, new clients are held (accepted, nothing read)
 * until the route moves to a new epoch, a connection to the target succeeds again, or
 * `holdWhileRefusedMs` passes: in a switchover, a client that reconnects while the old
 * primary is down reaches the new one the moment the route moves, instead of failing and
 * waiting out its own retry pause.
 */
export class TcpListener {
  readonly instanceId: string;
  readonly port: number;
  #target: TcpTarget;
  #maxSessions: number;
  #server: Server | undefined;
  #listening = false;
  #lastError: string | null = null;
  #failures = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  #closed = false;
  readonly #bridges = new Set<Bridge>();
  /** The epoch whose target refused the last connection tried: new clients are held. */
  #refusing: number | undefined;
  readonly #held = new Map<Socket, HeldClient>();

  constructor(private readonly options: TcpListenerOptions) {
    this.instanceId = options.instanceId;
    this.port = options.port;
    this.#target = options.target;
    this.#maxSessions = options.maxSessions;
  }

  get listening(): boolean {
    return this.#listening;
  }

  get lastError(): string | null {
    return this.#lastError;
  }

  get target(): TcpTarget {
    return this.#target;
  }

  start(): void {
    this.#bind();
  }

  /**
   * New connections go to `target` under `maxSessions` from now on; existing sessions are
   * the caller's call (a lower limit refuses new sessions, it cuts none).
   */
  retarget(target: TcpTarget, maxSessions: number): void {
    const moved = target.epoch !== this.#target.epoch;
    this.#target = target;
    this.#maxSessions = maxSessions;
    if (moved) this.#releaseHeld();
  }

  /** Clients held while the target refuses (see the class comment). */
  get heldClients(): number {
    return this.#held.size;
  }

  /** Stops listening and cuts every session accepted here. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    const server = this.#server;
    this.#server = undefined;
    this.#listening = false;
    for (const bridge of [...this.#bridges]) bridge.cut();
    this.#bridges.clear();
    for (const client of [...this.#held.keys()]) {
      this.#unhold(client)?.release();
      client.destroy();
    }
    if (server?.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  #bind(): void {
    if (this.#closed) return;
    const { instanceId, listenHost, port, log } = this.options;
    const server = createServer({ allowHalfOpen: true }, (socket) => this.#accept(socket));
    this.#server = server;
    server.once('listening', () => {
      // close() ran while the address lookup was still pending.
      if (this.#server !== server) {
        server.close();
        return;
      }
      this.#listening = true;
      this.#lastError = null;
      this.#failures = 0;
      log.info({ instanceId, port }, 'route listening');
    });
    server.on('error', (error: NodeJS.ErrnoException) => {
      if (this.#listening) {
        // Accept failures (EMFILE, …) on a bound port: keep serving, but show it.
        this.#lastError = `accept on ${listenHost}:${port} failed: ${error.code ?? error.message}`;
        log.error({ instanceId, port, err: error }, 'route listener error');
        return;
      }
      this.#failures += 1;
      this.#lastError = `cannot listen on ${listenHost}:${port}: ${error.code ?? error.message}`;
      const delayMs = retryDelayMs(this.#failures);
      if (logThisFailure(this.#failures)) {
        log.error(
          { instanceId, port, err: error, attempts: this.#failures, retryInMs: delayMs },
          'route port unavailable',
        );
      }
      server.close();
      if (this.#server === server) this.#server = undefined;
      if (this.#closed) return;
      this.#retryTimer = setTimeout(() => this.#bind(), delayMs);
      this.#retryTimer.unref();
    });
    server.listen({ port, host: listenHost, exclusive: true });
  }

  #accept(client: Socket): void {
    if (this.#closed) {
      client.destroy();
      return;
    }
    const { instanceId, admission, tally } = this.options;
    // A peer that reset before we looked has no address: nothing left to serve.
    if (client.remoteAddress === undefined) {
      client.destroy();
      return;
    }
    const release = admission.enterTcp(instanceId, clientKey(client.remoteAddress), this.#maxSessions);
    if (typeof release === 'string') {
      // Refused before any connection to the target: the database never sees it. A reset
      // instead of a FIN leaves no TIME_WAIT behind on the router's side.
      tally.count(instanceId, release);
      client.on('error', () => {});
      client.resetAndDestroy();
      return;
    }
    if (this.#refusing === this.#target.epoch && this.options.holdWhileRefusedMs > 0) this.#hold(client, release);
    else this.#bridge(client, release);
  }

  #hold(client: Socket, release: () => void): void {
    const timer = setTimeout(() => {
      // Held long enough: this client tries the target as it is, and so do the next ones.
      if (!this.#unhold(client)) return;
      this.#refusing = undefined;
      this.#bridge(client, release);
    }, this.options.holdWhileRefusedMs);
    this.#held.set(client, { release, timer });
    client.on('error', () => {});
    client.once('close', () => this.#unhold(client)?.release());
  }

  /** Takes a client out of the held ones (its timer cleared); undefined when it was not held. */
  #unhold(client: Socket): HeldClient | undefined {
    const held = this.#held.get(client);
    if (!held) return undefined;
    this.#held.delete(client);
    clearTimeout(held.timer);
    return held;
  }

  #releaseHeld(): void {
    this.#refusing = undefined;
    for (const client of [...this.#held.keys()]) {
      const held = this.#unhold(client);
      if (held) this.#bridge(client, held.release);
    }
  }

  #bridge(client: Socket, release: () => void): void {
    const { instanceId, connectTimeoutMs, idleTimeoutMs, sessions, tally, log, meter } = this.options;
    let unregister = () => {};
    meter?.opened(instanceId, this.port);
    const target = this.#target;
    const bridge: Bridge = bridgeToTarget(client, target, {
      instanceId,
      connectTimeoutMs,
      idleTimeoutMs,
      log,
      onIdle: () => tally.count(instanceId, 'idleTimeout'),
      onConnectError: () => {
        meter?.connectError(instanceId, this.port);
        if (target.epoch === this.#target.epoch) this.#refusing = target.epoch;
      },
      onConnected: () => {
        if (this.#refusing === target.epoch) this.#releaseHeld();
      },
      onClosed: () => {
        meter?.closed(instanceId, this.port, client.bytesRead, client.bytesWritten);
        this.#bridges.delete(bridge);
        release();
        unregister();
      },
    });
    this.#bridges.add(bridge);
    unregister = sessions.add(instanceId, bridge);
  }
}
