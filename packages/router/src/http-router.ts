import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger, RouteRecord } from '@service-foundry/core';
import { createProxyServer } from 'http-proxy-3';
import { hostnameOf } from './host-header.js';
import type { HttpLimits } from './http-limits.js';
import { badGatewayBody, notFoundBody, plainTextResponse, reply } from './http-replies.js';
import type { RouteTable } from './route-table.js';
import type { SessionRegistry } from './sessions.js';

export interface HttpRouterOptions {
  listenHost: string;
  /** 0 picks a free port. */
  port: number;
  connectTimeoutMs: number;
  routes: RouteTable;
  sessions: SessionRegistry;
  limits: HttpLimits;
  log: Logger;
}

export interface HttpRouter {
  /** The bound port. */
  readonly port: number;
  close(): Promise<void>;
}

/** Fails a proxied request whose target does not accept the connection in time (→ 502). */
function limitConnectTime(request: { destroy(error: Error): unknown }, socket: Socket, timeoutMs: number): void {
  if (!socket.connecting) return;
  const timer = setTimeout(() => request.destroy(new Error(`connect timed out after ${timeoutMs} ms`)), timeoutMs);
  const clear = () => clearTimeout(timer);
  socket.once('connect', clear);
  socket.once('close', clear);
}

/**
 * The HTTP port shared by every HTTP route: the Host header picks the route, http-proxy-3
 * forwards plain requests and WebSocket upgrades. Each request or WebSocket is a session
 * of its route's epoch, so a failover cuts it like a TCP session.
 */
export async function startHttpRouter(options: HttpRouterOptions): Promise<HttpRouter> {
  const { routes, sessions, limits, log, connectTimeoutMs } = options;
  // agent false (the default): one upstream connection per request, so nothing pooled
  // outlives an epoch change.
  const proxy = createProxyServer({ xfwd: true, ws: true });
  const upgraded = new WeakSet<IncomingMessage>();
  const openUpgrades = new Set<Duplex>();

  proxy.on('error', (error, req) => log.warn({ err: error, host: req.headers.host }, 'http proxy error'));
  proxy.on('proxyReq', (proxyReq, _req, _res, _options, socket) =>
    limitConnectTime(proxyReq, socket, connectTimeoutMs),
  );
  proxy.on('proxyReqWs', (proxyReq, req, client) => {
    limits.watchUpgraded(client);
    proxyReq.once('socket', (socket: Socket) => limitConnectTime(proxyReq, socket, connectTimeoutMs));
    // http-proxy-3 only half-closes the upstream when the client goes away; a target that
    // never closes its side would then keep a socket to a demoted primary open forever.
    client.once('close', () => {
      if (!upgraded.has(req)) proxyReq.destroy();
    });
    proxyReq.once('upgrade', (_res: IncomingMessage, upstream: Socket) => {
      upgraded.add(req);
      if (client.destroyed) upstream.destroy();
      else client.once('close', () => upstream.destroy());
      upstream.once('close', () => client.destroySoon());
    });
  });
  // A target dying mid-body makes the response stream error; without a listener that
  // would be an uncaught exception.
  proxy.on('proxyRes', (proxyRes, _req, res) => proxyRes.on('error', () => res.destroy()));

  const lookup = (req: IncomingMessage): RouteRecord | undefined => {
    const hostname = hostnameOf(req.headers.host);
    return hostname === undefined ? undefined : routes.byHostname(hostname);
  };
  const targetOf = (route: RouteRecord) => ({ host: route.target.host, port: route.target.port, protocol: 'http:' });

  const server: Server = createServer((req, res) => {
    const route = lookup(req);
    if (!route) {
      reply(res, 404, notFoundBody);
      return;
    }
    const release = limits.admitRequest(req, res, route);
    if (!release) return;
    const unregister = sessions.add(route.instanceId, { epoch: route.epoch, cut: () => req.socket.destroy() });
    res.once('close', () => {
      release();
      unregister();
    });
    proxy.web(req, res, { target: targetOf(route) }, (error) => {
      log.warn({ err: error, instanceId: route.instanceId, epoch: route.epoch }, 'http route target failed');
      if (!res.headersSent) reply(res, 502, badGatewayBody);
      else res.destroy();
    });
  });

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', (error) => log.debug({ err: error }, 'upgraded client socket error'));
    const route = lookup(req);
    if (!route) {
      socket.end(plainTextResponse('404 Not Found', notFoundBody));
      return;
    }
    const release = limits.admitUpgrade(req, socket, route);
    if (!release) return;
    openUpgrades.add(socket);
    const unregister = sessions.add(route.instanceId, { epoch: route.epoch, cut: () => socket.destroy() });
    socket.once('close', () => {
      openUpgrades.delete(socket);
      release();
      unregister();
    });
    proxy.ws(req, socket, head, { target: targetOf(route) }, (error) => {
      log.warn({ err: error, instanceId: route.instanceId, epoch: route.epoch }, 'websocket route target failed');
      if (!upgraded.has(req) && socket.writable) socket.end(plainTextResponse('502 Bad Gateway', badGatewayBody));
    });
  });

  limits.attach(server);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: options.port, host: options.listenHost, exclusive: true }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (error) => log.error({ err: error }, 'http router error'));
  const address = server.address();
  const port = address && typeof address === 'object' ? address.port : options.port;
  log.info({ port }, 'http router listening');

  return {
    port,
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      for (const socket of openUpgrades) socket.destroy();
      openUpgrades.clear();
      proxy.close();
      await closed;
    },
  };
}
