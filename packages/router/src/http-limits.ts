import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { RouteRecord } from '@service-foundry/core';
import type { Admission, LimitReason, Release } from './admission.js';
import { clientKey } from './client-key.js';
import { plainTextResponse, refusal, reply } from './http-replies.js';
import { httpPortScope, type LimitTally } from './limit-tally.js';

export interface HttpLimitsOptions {
  admission: Admission;
  tally: LimitTally;
  /** `0`: no idle timeout. */
  idleTimeoutMs: number;
  /** Client sessions of a route whose record carries no `limits`. */
  defaultMaxSessions: number;
}

/**
 * The limits on the HTTP port. Each client *connection* takes a slot of the fd budget and
 * of its address's total (refused: the socket is destroyed at once, before any request is
 * read). Each *request in flight* or WebSocket takes a slot of its route and of its
 * address's share of the route (refused: 503 or 429 without contacting the target).
 */
export class HttpLimits {
  /** The route whose request or WebSocket a client socket carries now, for idle counting. */
  readonly #routeOf = new WeakMap<Duplex, string>();

  constructor(private readonly options: HttpLimitsOptions) {}

  attach(server: Server): void {
    const { admission, tally, idleTimeoutMs } = this.options;
    server.on('connection', (socket: Socket) => {
      const release = admission.enterConnection(clientKey(socket.remoteAddress));
      if (typeof release === 'string') {
        tally.count(httpPortScope, release);
        socket.on('error', () => {});
        socket.destroy();
        return;
      }
      socket.once('close', release);
    });
    // Node arms this on every client socket and re-arms it on every read and write.
    if (idleTimeoutMs > 0) server.setTimeout(idleTimeoutMs, (socket: Socket) => this.#idle(socket));
  }

  /** A route slot for a plain request, or `undefined` after answering 503/429. */
  admitRequest(req: IncomingMessage, res: ServerResponse, route: RouteRecord): Release | undefined {
    const release = this.#enter(req, route);
    if (typeof release === 'string') {
      const { status, body } = refusal(release);
      res.shouldKeepAlive = false;
      reply(res, status, body, { 'retry-after': '1' });
      return undefined;
    }
    const socket = req.socket;
    this.#routeOf.set(socket, route.instanceId);
    return () => {
      release();
      this.#routeOf.delete(socket);
    };
  }

  /** A route slot for a WebSocket upgrade, or `undefined` after answering 503/429. */
  admitUpgrade(req: IncomingMessage, socket: Duplex, route: RouteRecord): Release | undefined {
    const release = this.#enter(req, route);
    if (typeof release === 'string') {
      const { statusLine, body } = refusal(release);
      socket.end(plainTextResponse(statusLine, body, 'Retry-After: 1\r\n'));
      return undefined;
    }
    this.#routeOf.set(socket, route.instanceId);
    return release;
  }

  /**
   * Arms the idle timeout of an upgraded client socket. Call it once the proxy has set the
   * socket up: the HTTP server stops watching a socket once it is upgraded, and
   * http-proxy-3 clears the socket's timeout when it takes the socket over.
   */
  watchUpgraded(socket: Duplex): void {
    const { idleTimeoutMs } = this.options;
    if (idleTimeoutMs > 0 && 'setTimeout' in socket) {
      (socket as Socket).setTimeout(idleTimeoutMs, () => this.#idle(socket));
    }
  }

  #enter(req: IncomingMessage, route: RouteRecord): Release | LimitReason {
    const { admission, tally, defaultMaxSessions } = this.options;
    const maxSessions = route.limits?.maxSessions ?? defaultMaxSessions;
    const result = admission.enterRoute(route.instanceId, clientKey(req.socket.remoteAddress), maxSessions);
    if (typeof result === 'string') tally.count(route.instanceId, result);
    return result;
  }

  #idle(socket: Duplex): void {
    this.options.tally.count(this.#routeOf.get(socket) ?? httpPortScope, 'idleTimeout');
    socket.destroy();
  }
}
