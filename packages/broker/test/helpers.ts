import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  connectEtcd,
  createLogger,
  type Etcd3,
  type EtcdProcess,
  type InstanceRecord,
  instanceCodec,
  json,
  Keyspace,
  readRecord,
  SecretBox,
  startEtcd,
} from '@service-foundry/core';
import { type RunningBroker, startBroker } from '../src/index.js';

export const postgresServiceId = '4f6f0a8e-5d8a-4c43-9a57-2a4f1d3c6b01';
export const smallPlanId = 'b0c6c1d2-83a4-4a8e-8d2f-6e1f0c9a7b11';
/** The platform's login (`osb` in the config): reaches /v2 only. */
export const osbLogin = { user: 'cf-platform', password: 'correct-horse-battery' };
/** An operator (role `operator`): /sf/v1 and /v2, as `sf` uses them. */
export const operatorLogin = { user: 'ops-alice', password: 'operator-horse-battery' };
/** A read-only operator (role `viewer`): GET/HEAD of /sf/v1 only. */
export const viewerLogin = { user: 'ops-viewer', password: 'viewer-horse-battery' };
/** The default login of `call` on the operator API, and so the "by" of operator actions. */
export const username = operatorLogin.user;
export const password = operatorLogin.password;

/** The broker config's logins, for the three logins above. */
export const brokerLogins = {
  osb: { username: osbLogin.user, password: osbLogin.password },
  operators: [
    { username: operatorLogin.user, password: operatorLogin.password, role: 'operator' },
    { username: viewerLogin.user, password: viewerLogin.password, role: 'viewer' },
  ],
};
/** The key that seals what the brokers under test store in etcd (one per machine, made once). */
export const secretsKeyFile = await SecretBox.ensureKeyFile(join(tmpdir(), 'sf-test-secrets.key'));
/** Opens sealed records the way the broker does, for tests that read etcd directly. */
export const secretBox = await SecretBox.fromKeyFile(secretsKeyFile);

export interface Harness {
  etcd: EtcdProcess;
  client: Etcd3;
  keys: Keyspace;
  broker: RunningBroker;
  /** Starts another broker on the same etcd and keyspace with extra options. */
  extraBroker(options: Record<string, unknown>): Promise<RunningBroker>;
  close(): Promise<void>;
}

/** A real etcd in a temp dir and a broker on a free port under a keyspace root of its own. */
export async function startHarness(options: Record<string, unknown> = {}): Promise<Harness> {
  const dir = await mkdtemp(join(tmpdir(), 'sf-broker-test-'));
  const etcd = await startEtcd({ dataDir: join(dir, 'etcd') });
  const keys = new Keyspace(`/test-${randomBytes(6).toString('hex')}`);
  const client = connectEtcd({ endpoints: [etcd.endpoint] });
  const log = createLogger({ name: 'broker-test', level: process.env.SF_TEST_LOG_LEVEL ?? 'silent' });
  const brokers: RunningBroker[] = [];
  const extraBroker = async (extra: Record<string, unknown>) => {
    const broker = await startBroker(
      {
        etcdEndpoints: [etcd.endpoint],
        keyspaceRoot: keys.root,
        secretsKeyFile,
        port: 0,
        ...brokerLogins,
        ...options,
        ...extra,
      },
      { log },
    );
    brokers.push(broker);
    return broker;
  };
  const broker = await extraBroker({});
  return {
    etcd,
    client,
    keys,
    broker,
    extraBroker,
    close: async () => {
      for (const b of brokers) await b.stop();
      client.close();
      await etcd.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface Reply {
  status: number;
  headers: Headers;
  body: unknown;
  text: string;
}

export interface CallOptions {
  body?: unknown;
  /** Sent as is, instead of JSON-encoding `body`. */
  rawBody?: string;
  contentType?: string | null;
  /** @default osbLogin on /v2 paths, operatorLogin elsewhere; null: no Authorization header */
  auth?: { user: string; password: string } | null;
  apiVersion?: string | null;
  headers?: Record<string, string>;
}

/**
 * One HTTP call to the broker with the defaults of its caller: basic auth (the platform's
 * login on /v2, an operator's elsewhere), OSB 2.17, JSON.
 */
export async function call(base: string, method: string, path: string, options: CallOptions = {}): Promise<Reply> {
  const headers: Record<string, string> = { ...options.headers };
  const auth = options.auth === undefined ? (path.startsWith('/v2/') ? osbLogin : operatorLogin) : options.auth;
  if (auth) headers.authorization = `Basic ${Buffer.from(`${auth.user}:${auth.password}`).toString('base64')}`;
  const version = options.apiVersion === undefined ? '2.17' : options.apiVersion;
  if (version !== null) headers['x-broker-api-version'] = version;
  const payload = options.rawBody ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
  const contentType = options.contentType === undefined ? 'application/json' : options.contentType;
  if (payload !== undefined && contentType !== null) headers['content-type'] = contentType;
  // Bytes, not a string: fetch would add `Content-Type: text/plain` to a string body.
  const res = await fetch(`${base}${path}`, {
    method,
    headers,
    body: payload === undefined ? null : Buffer.from(payload),
  });
  const text = await res.text();
  let body: unknown;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  return { status: res.status, headers: res.headers, body, text };
}

/** Every key under the root with its value and revisions, plus the store revision. */
export async function dumpKeyspace(client: Etcd3, keys: Keyspace): Promise<string> {
  const res = await client.getAll().prefix(`${keys.root}/`).exec();
  const rows = res.kvs.map((kv) => [kv.key.toString(), kv.value.toString('base64'), kv.mod_revision, kv.version]);
  return JSON.stringify({ revision: res.header.revision, rows });
}

export async function readInstance(client: Etcd3, keys: Keyspace, id: string): Promise<InstanceRecord | undefined> {
  return (await readRecord(client, instanceCodec, keys.instance(id)))?.value;
}

/** What the controller does once the route is up. */
export async function markReady(client: Etcd3, keys: Keyspace, id: string): Promise<void> {
  const record = await readInstance(client, keys, id);
  if (!record) throw new Error(`no instance ${id}`);
  const ready: InstanceRecord = {
    ...record,
    phase: 'ready',
    message: 'primary on test-node',
    operation: { ...record.operation, state: 'succeeded', description: 'instance is ready' },
  };
  await client.put(keys.instance(id)).value(json(ready)).exec();
}

/** What the controller does at the end of a teardown: everything of the instance goes at once. */
export async function deleteLikeController(client: Etcd3, keys: Keyspace, id: string): Promise<void> {
  const record = await readInstance(client, keys, id);
  if (!record) throw new Error(`no instance ${id}`);
  await client
    .if(keys.instance(id), 'Version', '>', 0)
    .then(
      client.delete().key(keys.instance(id)),
      client.delete().key(keys.secret(id)),
      client.delete().key(keys.routerPort(record.routerPort)),
      client.delete().prefix(keys.instanceBindings(id)),
    )
    .commit();
}

export function provisionBody(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    service_id: postgresServiceId,
    plan_id: smallPlanId,
    organization_guid: 'org',
    space_guid: 'space',
    ...extra,
  };
}

export function uniqueId(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

/** Every error the broker sends has the OSB shape plus our stable code. */
export function assertOsbError(body: unknown, error: string): void {
  const b = body as Record<string, unknown>;
  assert.equal(b.error, error, JSON.stringify(body));
  assert.equal(typeof b.description, 'string');
  assert.ok((b.description as string).length > 0);
  assert.match(String(b.sf_code), /^SF_ERR_[A-Z_]+$/);
}

export interface RawReply {
  status: number;
  headers: Map<string, string>;
  body: unknown;
  text: string;
}

/**
 * Sends bytes exactly as given over a fresh TCP connection: `fetch` and node:http would
 * normalize or refuse the paths and methods these tests need to send. `head` is the request
 * line and headers without the blank line; `Connection: close` is added.
 */
export async function rawHttp(base: string, head: string, body = ''): Promise<RawReply> {
  const url = new URL(base);
  const socket = connect({ host: url.hostname, port: Number(url.port) });
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  await once(socket, 'connect');
  const length = body ? `Content-Length: ${Buffer.byteLength(body)}\r\n` : '';
  // Not end(): a server that sees the client's FIN drops the response it is still preparing.
  // It closes the connection itself after answering (Connection: close); a silent server
  // is cut off after 10 s and the reply then has no status.
  socket.setTimeout(10_000, () => socket.destroy());
  socket.write(`${head}\r\nHost: ${url.host}\r\nConnection: close\r\n${length}\r\n${body}`);
  await once(socket, 'close');
  const raw = Buffer.concat(chunks).toString('utf8');
  const split = raw.indexOf('\r\n\r\n');
  const [statusLine = '', ...lines] = raw.slice(0, split).split('\r\n');
  const headers = new Map(
    lines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]),
  );
  const text = raw.slice(split + 4);
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  return { status: Number(statusLine.split(' ')[1]), headers, body: parsed, text };
}

/** `Authorization` header value for a login. */
export function basicAuth(login: { user: string; password: string }): string {
  return `Basic ${Buffer.from(`${login.user}:${login.password}`).toString('base64')}`;
}
