import {
  type Etcd3,
  type InstanceRecord,
  instanceCodec,
  instanceTombstone,
  json,
  type Keyspace,
  type Logger,
  type NodeRecord,
  readRecord,
  tombstoneTtlSeconds,
} from '@service-foundry/core';
import { brokerLogins, type CallOptions, call, provisionBody, type Reply } from './broker-calls.js';
import { startTestEtcd, type TestEtcd } from './etcd.js';
import { silentLogger } from './logger.js';
import { secretsKeyFile } from './secrets.js';

export interface RunningBroker {
  url: string;
  stop(): Promise<void>;
}

/**
 * The broker's `startBroker`, passed in: the broker's own tests run its source, other
 * packages' tests its build.
 */
export type StartBroker = (config: unknown, options: { log?: Logger }) => Promise<RunningBroker>;

export interface BrokerHarnessOptions {
  startBroker: StartBroker;
  /** Broker config on top of the harness's (etcd, keyspace, secrets key, the three logins, port 0). @default {} */
  config?: Record<string, unknown>;
}

/** A real etcd and a broker on a free port under a keyspace root of their own. */
export interface Harness {
  etcd: TestEtcd;
  client: Etcd3;
  keys: Keyspace;
  broker: RunningBroker;
  /** Starts another broker on the same etcd and keyspace with extra config. */
  extraBroker(config: Record<string, unknown>): Promise<RunningBroker>;
  /** `call` on this harness's broker. */
  call(method: string, path: string, options?: CallOptions): Promise<Reply>;
  /** Provisions `id` as the platform would (postgres `small`, `extra` on top of the body). */
  provision(id: string, extra?: Record<string, unknown>): Promise<Reply>;
  readInstance(id: string): Promise<InstanceRecord | undefined>;
  /** What the controller does once the route is up. */
  markReady(id: string): Promise<void>;
  /** What the controller does at the end of a teardown: everything of the instance goes at once, a tombstone stays. */
  deleteLikeController(id: string): Promise<void>;
  /** A node record as an agent registers it (4 cpu, 8 GiB, 100 GB on 10.0.0.1), `fields` on top. */
  putNode(name: string, fields?: Partial<NodeRecord>): Promise<NodeRecord>;
  /** Every key under the root with its value and revisions, plus the store revision. */
  dump(): Promise<string>;
  close(): Promise<void>;
}

export async function startBrokerHarness(options: BrokerHarnessOptions): Promise<Harness> {
  const etcd = await startTestEtcd();
  const { client, keys } = etcd;
  const log = silentLogger('broker-test');
  const brokers: RunningBroker[] = [];
  const extraBroker = async (extra: Record<string, unknown>) => {
    const config = {
      etcdEndpoints: [etcd.endpoint],
      keyspaceRoot: keys.root,
      secretsKeyFile,
      port: 0,
      ...brokerLogins,
      ...options.config,
      ...extra,
    };
    const broker = await options.startBroker(config, { log });
    brokers.push(broker);
    return broker;
  };
  const broker = await extraBroker({}).catch(async (error: unknown) => {
    await etcd.stop();
    throw error;
  });
  const readInstance = async (id: string) => (await readRecord(client, instanceCodec, keys.instance(id)))?.value;
  const instance = async (id: string) => {
    const record = await readInstance(id);
    if (!record) throw new Error(`no instance ${id}`);
    return record;
  };
  return {
    etcd,
    client,
    keys,
    broker,
    extraBroker,
    call: (method, path, callOptions) => call(broker.url, method, path, callOptions),
    provision: (id, extra) =>
      call(broker.url, 'PUT', `/v2/service_instances/${id}?accepts_incomplete=true`, { body: provisionBody(extra) }),
    readInstance,
    markReady: async (id) => {
      const record = await instance(id);
      const ready: InstanceRecord = {
        ...record,
        phase: 'ready',
        message: 'primary on test-node',
        operation: { ...record.operation, state: 'succeeded', description: 'instance is ready' },
      };
      await client.put(keys.instance(id)).value(json(ready)).exec();
    },
    deleteLikeController: async (id) => {
      const record = await instance(id);
      const lease = await client.lease(tombstoneTtlSeconds, { autoKeepAlive: false }).grant();
      await client
        .if(keys.instance(id), 'Version', '>', 0)
        .then(
          client.delete().key(keys.instance(id)),
          client
            .put(keys.tombstone(id))
            .value(json(instanceTombstone(record, new Date())))
            .lease(lease),
          client.delete().key(keys.secret(id)),
          client.delete().key(keys.routerPort(record.routerPort)),
          client.delete().prefix(keys.instanceBindings(id)),
        )
        .commit();
    },
    putNode: async (name, fields = {}) => {
      const record: NodeRecord = {
        name,
        address: '10.0.0.1',
        capacity: { cpuMillis: 4000, memoryMb: 8192, diskMb: 100_000 },
        labels: {},
        startedAt: new Date().toISOString(),
        ...fields,
      };
      await client.put(keys.node(name)).value(json(record)).exec();
      return record;
    },
    dump: async () => {
      const res = await client.getAll().prefix(`${keys.root}/`).exec();
      const rows = res.kvs.map((kv) => [kv.key.toString(), kv.value.toString('base64'), kv.mod_revision, kv.version]);
      return JSON.stringify({ revision: res.header.revision, rows });
    },
    close: async () => {
      for (const b of brokers) await b.stop();
      await etcd.stop();
    },
  };
}
