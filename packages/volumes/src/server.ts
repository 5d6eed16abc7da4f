import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { isAbsolute } from 'node:path';
import { nodeAlivePath } from '@service-foundry/core';
import { RequestVerifier } from './auth.js';
import { compileTransferConfig, type TransferConfig, type TransferOptions } from './config.js';
import { describe, sendJson, statusOf } from './http-answers.js';
import { type PeerCallHandler, peerCallPattern } from './peer-calls.js';
import { isVolumeName } from './protocol.js';
import { type HandlerContext, serveManifest, serveSnapshot, type TransferEvent } from './server-handlers.js';
import { clientCertificateOf, readVolumeTls, serverTlsOptions, type VolumeTlsFiles } from './tls.js';

export type { TransferEvent } from './server-handlers.js';

export interface VolumeServerOptions extends TransferOptions {
  /**
   * Where the volume called `name` lives on this host (e.g. a Docker volume's Mountpoint),
   * or undefined when this agent serves no such volume (→ 404). Names are already checked
   * against Docker's volume name rules.
   */
  resolveVolumeDir: (name: string) => string | undefined | Promise<string | undefined>;
  /** Told about every transfer. @default nothing */
  onTransfer?: (event: TransferEvent) => void;
  /**
   * The common name a client certificate must have (mutual TLS, tls.ts): checked before the
   * signature, answered `403` otherwise. On plain HTTP no request has one, so every request
   * is refused. @default undefined (any client; the TLS handshake already checked the issuer)
   */
  clientNamePattern?: RegExp;
  /**
   * Calls other agents may make besides transfers (`POST /calls/<name>`, peer-calls.ts),
   * authenticated like them. @default {} (none)
   */
  calls?: Readonly<Record<string, PeerCallHandler>>;
}

export interface VolumeServer {
  /** The request listener; mount it on a node:http server (see attach for 100-continue). */
  handle: RequestListener;
  /**
   * Listens on `server` for requests, also those sent with `Expect: 100-continue` (answered
   * before the client sends its body, so a refused one never gets to send it), and lifts
   * node's 5-minute whole-request timeout (transfers take as long as they take; the idle
   * timeout still applies).
   */
  attach(server: Server): void;
}

const routePattern = /^\/volumes\/([^/?]+)(\/manifest|\/snapshot)?(?:\?.*)?$/;

/**
 * The volume transfer endpoints as a node:http request listener: authentication first
 * (auth.ts), then `GET /volumes/:name/manifest` and `GET /volumes/:name/snapshot`
 * (server-handlers.ts). Peers pull; nothing is ever pushed into a volume here (`PUT
 * /volumes/:name` is refused). See docs/volumes.md.
 */
export function createVolumeServer(options: VolumeServerOptions): VolumeServer {
  const { resolveVolumeDir, onTransfer, clientNamePattern, calls = {}, ...transfer } = options;
  const config: Readonly<TransferConfig> = compileTransferConfig(transfer);
  const verifier = new RequestVerifier(config.secret, config.clockSkewMs);
  const context: HandlerContext = {
    config,
    verifier,
    report: (event) => {
      try {
        onTransfer?.(event);
      } catch {
        // A failing listener must not fail the transfer.
      }
    },
  };

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const path = req.url ?? '/';
    if (path === nodeAlivePath && method === 'GET') {
      // Liveness for the controller's node probes (docs/failover.md): an answer says only
      // that this process's event loop runs. Any client the TLS handshake admitted (a
      // certificate of the cluster CA) may ask; no secret, volume or name is involved.
      res.writeHead(204, { 'cache-control': 'no-store' });
      res.end();
      return;
    }
    if (clientNamePattern) {
      const name = clientCertificateOf(req.socket)?.subject?.CN;
      if (typeof name !== 'string' || !clientNamePattern.test(name)) {
        sendJson(res, 403, { error: 'forbidden: the client certificate does not name a volume peer' }, true);
        return;
      }
    }
    // Authentication before anything else: an unsigned request learns nothing, not even
    // whether a volume or route exists, and its body is never read.
    const verdict = verifier.verify(method, path, req.headers);
    if (!verdict.ok) {
      sendJson(res, 401, { error: `unauthorized: ${verdict.reason}` }, true);
      return;
    }
    const call = peerCallPattern.exec(path);
    if (call) return answerCall(req, res, calls, call[1] ?? '', call[2] ?? '');
    const match = routePattern.exec(path);
    const name = match?.[1];
    if (!match || !name) return sendJson(res, 404, { error: 'no such route' }, true);
    if (!isVolumeName(name)) return sendJson(res, 400, { error: 'invalid volume name' }, true);
    const action = match[2] ?? '';
    if (action === '') {
      res.setHeader('allow', 'GET');
      return sendJson(res, 405, { error: 'this server accepts no pushes; pull from it instead' }, true);
    }
    if (method !== 'GET') {
      res.setHeader('allow', 'GET');
      return sendJson(res, 405, { error: 'use GET' }, true);
    }
    const dir = await resolveVolumeDir(name);
    if (dir === undefined || !isAbsolute(dir)) return sendJson(res, 404, { error: `no volume ${name} here` }, true);
    if (action === '/manifest') return serveManifest(res, name, dir);
    return serveSnapshot(context, req, res, name, dir, verdict.nonce);
  }

  const run = (req: IncomingMessage, res: ServerResponse) => {
    req.setTimeout(config.idleTimeoutMs, () => req.destroy());
    route(req, res).catch((error: unknown) => {
      const status = statusOf(error);
      if (!req.complete) res.shouldKeepAlive = false;
      sendJson(res, status, describe(error), !req.complete);
      if (!req.complete) res.on('finish', () => req.destroy());
    });
  };

  return {
    handle: run,
    attach(server: Server) {
      server.requestTimeout = 0;
      server.on('request', run);
      // Never sends `100 Continue`: every answer here is final before any body is read.
      server.on('checkContinue', run);
    },
  };
}

/** A call's answer: only POST, only a known name, no body (a call says everything in its signed query). */
async function answerCall(
  req: IncomingMessage,
  res: ServerResponse,
  calls: Readonly<Record<string, PeerCallHandler>>,
  name: string,
  query: string,
): Promise<void> {
  const handler = Object.hasOwn(calls, name) ? calls[name] : undefined;
  if (!handler) return sendJson(res, 404, { error: `no call ${name.slice(0, 64)}` }, true);
  if (req.method !== 'POST') {
    res.setHeader('allow', 'POST');
    return sendJson(res, 405, { error: 'use POST' }, true);
  }
  const length = req.headers['content-length'];
  if (req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0')) {
    return sendJson(res, 400, { error: 'a call has no body: everything it says is in its signed query' }, true);
  }
  const subject = clientCertificateOf(req.socket)?.subject?.CN;
  const peer = typeof subject === 'string' ? subject : '';
  const answer = await handler({ peer, params: new URLSearchParams(query) });
  sendJson(res, answer.status, answer.body);
}

export interface StartedVolumeServer {
  server: Server;
  /** `https://host:port` with `tls`, else `http://host:port` */
  url: string;
  port: number;
  close(): Promise<void>;
}

export interface StartVolumeServerOptions extends VolumeServerOptions {
  /** @default '127.0.0.1' */
  host?: string;
  /** 0: any free port. @default 0 */
  port?: number;
  /**
   * Serve HTTPS with this certificate, and accept only clients presenting a certificate of
   * the same CA (tls.ts). @default undefined (plain HTTP: tests and single-host setups)
   */
  tls?: VolumeTlsFiles;
}

/**
 * A node:http(s) server serving only volumes, listening on `host:port` (port 0: any free
 * one). With `tls`, the certificate files are read once, here.
 */
export async function startVolumeServer(options: StartVolumeServerOptions): Promise<StartedVolumeServer> {
  const { host = '127.0.0.1', port = 0, tls, ...rest } = options;
  const volumes = createVolumeServer(rest);
  const server: Server = tls ? createHttpsServer(serverTlsOptions(await readVolumeTls(tls))) : createServer();
  volumes.attach(server);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    server,
    url: `${tls ? 'https' : 'http'}://${shown}:${address.port}`,
    port: address.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
