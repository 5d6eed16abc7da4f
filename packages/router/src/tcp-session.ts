import { connect, type Socket } from 'node:net';
import { pipeline } from 'node:stream';
import type { Logger } from '@service-foundry/core';

export interface TcpTarget {
  host: string;
  port: number;
  epoch: number;
}

export interface BridgeOptions {
  instanceId: string;
  connectTimeoutMs: number;
  log: Logger;
  /** No bytes either way for this long closes the session; `0` never does. */
  idleTimeoutMs: number;
  /** Called when the idle timeout closes the session (before it closes). */
  onIdle: () => void;
  /** Called once, after both sockets have closed. */
  onClosed: () => void;
  /** Called when the target could not be reached (metrics). @default undefined */
  onConnectError?: () => void;
}

export interface Bridge {
  readonly epoch: number;
  /** Resets the client (it sees ECONNRESET, not a clean end) and drops the upstream. */
  cut(): void;
}

function ignore(): void {}

const quietCodes = new Set(['ECONNRESET', 'EPIPE', 'ERR_STREAM_PREMATURE_CLOSE', 'ERR_STREAM_DESTROYED']);

/**
 * Connects an accepted client to `target` and copies bytes both ways. Half-close is
 * forwarded (a client's FIN reaches the target while the answer still flows back); an
 * error on either side destroys both, so no socket outlives its peer.
 */
export function bridgeToTarget(client: Socket, target: TcpTarget, options: BridgeOptions): Bridge {
  const { log, instanceId } = options;
  const upstream = connect({ host: target.host, port: target.port, allowHalfOpen: true });
  client.setNoDelay(true);
  upstream.setNoDelay(true);
  upstream.setTimeout(options.connectTimeoutMs, () => {
    upstream.destroy(
      new Error(`connect to ${target.host}:${target.port} timed out after ${options.connectTimeoutMs} ms`),
    );
  });
  let connected = false;
  upstream.once('connect', () => {
    connected = true;
    upstream.setTimeout(0);
  });

  let reported = false;
  const report = (side: 'client' | 'target') => (error: NodeJS.ErrnoException) => {
    if (reported) return;
    reported = true;
    const fields = { instanceId, target: `${target.host}:${target.port}`, epoch: target.epoch, side, err: error };
    if (side === 'target' && !connected) {
      options.onConnectError?.();
      log.warn(fields, 'cannot reach route target');
    } else if (quietCodes.has(error.code ?? '')) log.debug(fields, 'tcp session ended abruptly');
    else log.warn(fields, 'tcp session failed');
  };
  client.on('error', report('client'));
  upstream.on('error', report('target'));
  if (options.idleTimeoutMs > 0) {
    // One timer on the client socket is enough: Node re-arms a socket's timeout on every
    // read and every write, and each byte either way is read or written on the client.
    client.setTimeout(options.idleTimeoutMs, () => {
      reported = true;
      options.onIdle();
      client.destroy();
      upstream.destroy();
    });
  }
  // pipeline destroys both sockets when either direction fails; the socket error
  // listeners above do the logging, so the callbacks have nothing left to do.
  pipeline(client, upstream, ignore);
  pipeline(upstream, client, ignore);

  let open = 2;
  const closedOne = () => {
    open -= 1;
    if (open === 0) options.onClosed();
  };
  client.once('close', closedOne);
  upstream.once('close', closedOne);

  return {
    epoch: target.epoch,
    cut: () => {
      reported = true;
      if (!client.destroyed) client.resetAndDestroy();
      upstream.destroy();
    },
  };
}
