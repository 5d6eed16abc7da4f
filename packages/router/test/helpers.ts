import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import {
  connectEtcd,
  createLogger,
  type Etcd3,
  type EtcdProcess,
  json,
  Keyspace,
  type Logger,
  type RouteRecord,
  startEtcd,
  waitFor,
} from '@service-foundry/core';
import { pino } from 'pino';

export const testLog: Logger = createLogger({ name: 'router-test', level: process.env.SF_LOG_LEVEL ?? 'silent' });

export interface TestEtcd {
  etcd: EtcdProcess;
  client: Etcd3;
  keys: Keyspace;
  root: string;
  stop(): Promise<void>;
}

/**
 * A real etcd with its data in a fresh temp dir, removed again if etcd does not start.
 * The free port picked for it can be taken by another process (tests of other packages
 * run side by side) before etcd binds it: then a second and a third try get new ports.
 */
async function startEtcdInTempDir(): Promise<{ etcd: EtcdProcess; dataDir: string }> {
  for (let attempt = 1; ; attempt += 1) {
    const dataDir = await mkdtemp(join(tmpdir(), 'sf-router-etcd-'));
    try {
      return { etcd: await startEtcd({ dataDir }), dataDir };
    } catch (error) {
      await rm(dataDir, { recursive: true, force: true });
      if (attempt === 3) throw error;
    }
  }
}

/** A real etcd on free ports with a keyspace root no other test uses. */
export async function startTestEtcd(): Promise<TestEtcd> {
  const { etcd, dataDir } = await startEtcdInTempDir();
  const client = connectEtcd({ endpoints: [etcd.endpoint] });
  const root = `/test-${randomUUID().slice(0, 8)}`;
  return {
    etcd,
    client,
    keys: new Keyspace(root),
    root,
    stop: async () => {
      client.close();
      await etcd.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export async function putRoute(env: TestEtcd, route: RouteRecord): Promise<void> {
  await env.client.put(env.keys.route(route.instanceId)).value(json(route));
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

/** A log line the router wrote, as parsed JSON. */
export type LogLine = Record<string, unknown> & { msg?: string };

/**
 * A real pino logger writing into memory, for tests that check what the router logs
 * (and how often).
 */
export function captureLog(): { log: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) lines.push(JSON.parse(line) as LogLine);
      callback();
    },
  });
  return { log: pino({ name: 'router-test', level: 'debug' }, stream), lines };
}
