import { rm } from 'node:fs/promises';
import { after, before, type TestContext } from 'node:test';
import {
  type AssignmentRecord,
  type Etcd3,
  type EventRecord,
  eventCodec,
  type InstanceSecret,
  type Keyspace,
  type PrimaryRecord,
  type ReplicaStatus,
  readPrefix,
  waitFor,
} from '@service-foundry/core';
import { startTestEtcd, type TestEtcd, uniqueId, uniqueKeyspace } from '@service-foundry/test-support';
import { removeClusterResources } from '@service-foundry/test-support/docker';
import { type AgentOptions, type RunningAgent, replicaResourceName } from '../src/index.js';
import { putSecret, startTestAgent } from './helpers.js';
import {
  assignmentFor,
  ensureReplicatedImage,
  shellIn,
  statusWhere,
  writeReplicatedCatalog,
} from './replication-helpers.js';

export const testSecret: InstanceSecret = {
  adminUser: 'admin',
  adminPassword: 'admin-secret-pw',
  replicationUser: 'replicator',
  replicationPassword: 'replication-secret-pw',
};

/** One agent (one node) with its own keyspace, cluster id and instance, cleaned up after the test. */
export interface ReplicationHarness {
  keys: Keyspace;
  node: string;
  clusterId: string;
  instanceId: string;
  agent: RunningAgent;
  assign(ordinal: number, fields?: Partial<AssignmentRecord>): Promise<void>;
  /** Writes `primary/<instance>` by hand (as the controller would) and returns its revision, the epoch. */
  putPrimary(ordinal: number, node?: string): Promise<number>;
  status(
    ordinal: number,
    description: string,
    accept: (s: ReplicaStatus) => boolean,
    timeoutMs?: number,
  ): Promise<ReplicaStatus>;
  container(ordinal: number): string;
  /** What the recipe commands did inside the replica's container (its /data/actions). */
  actions(ordinal: number): Promise<string[]>;
  events(kind: string): Promise<EventRecord[]>;
}

export async function startReplicationHarness(
  t: TestContext,
  etcd: TestEtcd,
  catalogDir: string,
  options: Partial<AgentOptions> = {},
): Promise<ReplicationHarness> {
  const { client } = etcd;
  const keys = uniqueKeyspace();
  const node = uniqueId('repl');
  const clusterId = uniqueId('cl');
  const instanceId = uniqueId('inst');
  const agent = await startTestAgent(etcd.endpoint, keys, {
    node,
    reconcileIntervalMs: 500,
    positionIntervalMs: 200,
    catalogDir,
    clusterId,
    ...options,
  });
  t.after(async () => {
    await agent.stop();
    await removeClusterResources(clusterId);
  });
  await putSecret(client, keys, instanceId, testSecret);
  const container = (ordinal: number) => replicaResourceName(node, { instanceId, ordinal });
  return {
    keys,
    node,
    clusterId,
    instanceId,
    agent,
    container,
    assign: async (ordinal, fields = {}) => {
      await client
        .put(keys.assignment(node, instanceId, ordinal))
        .value(JSON.stringify(assignmentFor(instanceId, ordinal, fields)))
        .exec();
    },
    putPrimary: async (ordinal, primaryNode = node) => {
      const record: PrimaryRecord = {
        instanceId,
        ordinal,
        node: primaryNode,
        host: '127.0.0.1',
        port: 1,
        electedAt: new Date().toISOString(),
      };
      const res = await client.put(keys.primary(instanceId)).value(JSON.stringify(record)).exec();
      return Number(res.header.revision);
    },
    status: (ordinal, description, accept, timeoutMs) =>
      statusWhere(client, keys, instanceId, ordinal, description, accept, timeoutMs),
    actions: async (ordinal) => (await shellIn(container(ordinal), 'cat /data/actions')).trim().split('\n'),
    events: async (kind) =>
      waitFor(
        async () => {
          const all = await readPrefix(client, eventCodec, keys.events());
          const found = [...all.items.values()].map((e) => e.value).filter((e) => e.kind === kind);
          return found.length > 0 ? found : undefined;
        },
        { description: `a ${kind} event`, timeoutMs: 10_000 },
      ),
  };
}

/**
 * The etcd and the replicated test service's catalog a suite's harnesses share, made before
 * its tests and removed after them. Call it in the suite's body.
 */
export function replicationSuite(): {
  readonly client: Etcd3;
  start(t: TestContext, options?: Partial<AgentOptions>): Promise<ReplicationHarness>;
} {
  let etcd: TestEtcd | undefined;
  let catalogDir = '';
  before(async () => {
    etcd = await startTestEtcd();
    catalogDir = await writeReplicatedCatalog(await ensureReplicatedImage());
  });
  after(async () => {
    await etcd?.stop();
    if (catalogDir) await rm(catalogDir, { recursive: true, force: true });
  });
  const started = (): TestEtcd => {
    if (!etcd) throw new Error('the replication suite has not started');
    return etcd;
  };
  return {
    get client() {
      return started().client;
    },
    start: (t, options) => startReplicationHarness(t, started(), catalogDir, options),
  };
}

/** The container's address on its first Docker network. */
export function networkAddressOf(info: {
  NetworkSettings: { Networks: Record<string, { IPAddress: string }> };
}): string {
  return Object.values(info.NetworkSettings.Networks)[0]?.IPAddress ?? '';
}
