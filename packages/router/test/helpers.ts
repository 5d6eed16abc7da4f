import { readdirSync, readFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { json, type RouteRecord, waitFor } from '@service-foundry/core';
import type { TestEtcd } from '@service-foundry/test-support';
import type { RunningRouter } from '../src/index.js';

/** What a router test started, each part possibly not started (its `before` failed early). */
export interface RouterTestParts {
  /** Client-side connections still open: sockets, test clients. */
  connections?: Iterable<{ destroy(): void }>;
  router?: RunningRouter | undefined;
  /** Stand-in databases and HTTP backends. */
  backends?: Array<{ close(): Promise<void> } | undefined>;
  env?: TestEtcd | undefined;
}

/** Ends a router test's parts in order: client connections, the router, the backends, etcd. */
export async function stopRouterTest(parts: RouterTestParts): Promise<void> {
  for (const connection of parts.connections ?? []) connection.destroy();
  await parts.router?.stop();
  for (const backend of parts.backends ?? []) await backend?.close();
  await parts.env?.stop();
}

export async function putRoute(env: TestEtcd, route: RouteRecord): Promise<void> {
  await env.client.put(env.keys.route(route.instanceId)).value(json(route));
}

/** A TCP route from the router's `port` to a stand-in on loopback `targetPort`, epoch 1 unless `fields` say otherwise. */
export function tcpRoute(
  instanceId: string,
  port: number,
  targetPort: number,
  fields: Partial<RouteRecord> = {},
): RouteRecord {
  return { instanceId, protocol: 'tcp', port, target: { host: '127.0.0.1', port: targetPort }, epoch: 1, ...fields };
}

export interface EchoServer {
  name: string;
  port: number;
  /** Sockets currently open on the server side. */
  sockets: Set<Socket>;
  /** Connections accepted since the server started. */
  accepted(): number;
  close(): Promise<void>;
}

/**
 * A stand-in primary: greets each connection with `<name>\n`, then echoes; when the
 * client half-closes it answers `<name> bye\n` and closes its side too.
 */
export async function startEchoServer(name: string): Promise<EchoServer> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server: Server = createServer({ allowHalfOpen: true }, (socket) => {
    accepted += 1;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.write(`${name}\n`);
    socket.on('data', (chunk) => socket.write(chunk));
    socket.on('end', () => socket.end(`${name} bye\n`));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address !== 'object') throw new Error('echo server has no port');
  return {
    name,
    port: address.port,
    sockets,
    accepted: () => accepted,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A client connection that records everything it receives and when it closed. */
export class TestClient {
  received = '';
  closed = false;
  error: NodeJS.ErrnoException | undefined;
  readonly socket: Socket;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.received += chunk;
    });
    socket.on('error', (error) => {
      this.error = error;
    });
    socket.on('close', () => {
      this.closed = true;
    });
  }

  /**
   * Starts connecting and returns at once, listeners attached: for connections the router
   * may refuse, where a reset can race the client's own `connect` event.
   */
  static start(port: number, localAddress?: string): TestClient {
    return new TestClient(connect({ port, host: '127.0.0.1', localAddress }));
  }

  /** `localAddress`: another loopback address (127.0.0.2, …) stands for another client host. */
  static async connect(port: number, localAddress?: string): Promise<TestClient> {
    const socket = connect({ port, host: '127.0.0.1', localAddress });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new TestClient(socket);
  }

  async waitForText(text: string, timeoutMs = 5000): Promise<void> {
    await waitFor(() => this.received.includes(text), {
      description: `${JSON.stringify(text)} (received so far: ${JSON.stringify(this.received)})`,
      timeoutMs,
      intervalMs: 10,
    });
  }

  async waitForClose(timeoutMs = 5000): Promise<void> {
    await waitFor(() => this.closed, { description: 'client connection to close', timeoutMs, intervalMs: 10 });
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** Resolves with the error code of a connection attempt, or `'connected'`. */
export async function tryConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}

/** State and parent pid of a process from `/proc/<pid>/stat`; undefined once it is gone. */
function procStat(pid: number): { state: string; parent: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces and parentheses): state, ppid, …
    const [state = '', parent] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state, parent: Number(parent) };
  } catch {
    return undefined;
  }
}

/** Running: neither gone nor a zombie (killed, not reaped yet by whoever adopted it). */
export function isRunning(pid: number): boolean {
  const stat = procStat(pid);
  return stat !== undefined && stat.state !== 'Z';
}

/** The running children of `parent`, with their command lines. */
export function runningChildren(parent: number): Array<{ pid: number; argv: string[] }> {
  const children: Array<{ pid: number; argv: string[] }> = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (procStat(pid)?.parent !== parent || !isRunning(pid)) continue;
    try {
      children.push({ pid, argv: readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0') });
    } catch {
      // Gone since the listing.
    }
  }
  return children;
}
