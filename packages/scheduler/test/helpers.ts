import { type InstanceRecord, json, type NodeRecord, type Resources } from '@service-foundry/core';
import { secretsKeyFile, type TestEtcd } from '@service-foundry/test-support';

/**
 * A scheduler config on the fixture's etcd and current keyspace (`isolate()` gives each
 * test its own), passes every 200 ms, `fields` on top.
 */
export function schedulerConfig(f: TestEtcd, fields: Record<string, unknown> = {}): Record<string, unknown> {
  return { etcdEndpoints: [f.endpoint], keyspaceRoot: f.keys.root, secretsKeyFile, intervalMs: 200, ...fields };
}

/**
 * Registers a node record under a lease, the way an agent does. The scheduler's input is
 * this record; no container runs behind it in these tests.
 */
export async function registerNode(
  f: TestEtcd,
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
