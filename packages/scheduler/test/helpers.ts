import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  connectEtcd,
  type Etcd3,
  type EtcdProcess,
  type InstanceRecord,
  json,
  Keyspace,
  type NodeRecord,
  type Resources,
  SecretBox,
  startEtcd,
} from '@service-foundry/core';

/** The key schedulers under test open sealed secrets with (one per machine, made once). */
export const secretsKeyFile = await SecretBox.ensureKeyFile(join(tmpdir(), 'sf-test-secrets.key'));

export interface EtcdFixture {
  etcd: EtcdProcess;
  client: Etcd3;
  /** The current test's keyspace; `isolate()` gives each test its own. */
  keys: Keyspace;
  isolate(): void;
  close(): Promise<void>;
}

function uniqueKeyspace(): Keyspace {
  return new Keyspace(`/test-${randomBytes(4).toString('hex')}`);
}

export async function etcdFixture(): Promise<EtcdFixture> {
  const dir = await mkdtemp(join(tmpdir(), 'sf-sched-test-'));
  const etcd = await startEtcd({ dataDir: join(dir, 'etcd') });
  const client = connectEtcd({ endpoints: [etcd.endpoint] });
  const fixture: EtcdFixture = {
    etcd,
    client,
    keys: uniqueKeyspace(),
    isolate: () => {
      fixture.keys = uniqueKeyspace();
    },
    close: async () => {
      client.close();
      await etcd.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
  return fixture;
}

/**
 * Registers a node record under a lease, the way an agent does. The scheduler's input is
 * this record; no container runs behind it in these tests.
 */
export async function registerNode(
  f: EtcdFixture,
  name: string,
  capacity: Resources,
  ttlSeconds = 30,
  labels: Record<string, string> = {},
): Promise<string> {
  const lease = f.client.lease(ttlSeconds, { autoKeepAlive: false });
  const record: NodeRecord = { name, address: '127.0.0.1', capacity, labels, startedAt: new Date().toISOString() };
  await lease.put(f.keys.node(name)).value(json(record)).exec();
  return lease.grant();
}

export function instanceRecord(id: string, replicas: number, resources: Resources, routerPort = 40000): InstanceRecord {
  return {
    id,
    name: id,
    serviceId: 'svc',
    planId: 'plan',
    serviceName: 'postgres',
    planName: 'small',
    parameters: {},
    replicas,
    resources,
    routerPort,
    context: {},
    createdAt: new Date().toISOString(),
    phase: 'provisioning',
    message: '',
    operation: {
      id: `op-${id}`,
      type: 'provision',
      state: 'in progress',
      description: '',
      startedAt: new Date().toISOString(),
    },
  };
}
