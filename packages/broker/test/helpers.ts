import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  connectEtcd,
  createLogger,
  type Etcd3,
  type EtcdProcess,
  type InstanceRecord,
  json,
  Keyspace,
  startEtcd,
} from '@service-foundry/core';
import { type RunningBroker, startBroker } from '../src/index.js';

export const postgresServiceId = '4f6f0a8e-5d8a-4c43-9a57-2a4f1d3c6b01';
export const smallPlanId = 'b0c6c1d2-83a4-4a8e-8d2f-6e1f0c9a7b11';
export const username = 'platform';
export const password = 'correct-horse-battery';

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
      { etcdEndpoints: [etcd.endpoint], keyspaceRoot: keys.root, port: 0, username, password, ...options, ...extra },
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
  auth?: { user: string; password: string } | null;
  apiVersion?: string | null;
  headers?: Record<string, string>;
}

/** One HTTP call to the broker with platform defaults: basic auth, OSB 2.17, JSON. */
export async function call(base: string, method: string, path: string, options: CallOptions = {}): Promise<Reply> {
  const headers: Record<string, string> = { ...options.headers };
  const auth = options.auth === undefined ? { user: username, password } : options.auth;
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
  const raw = await client.get(keys.instance(id)).string();
  return raw === null ? undefined : (JSON.parse(raw) as InstanceRecord);
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
