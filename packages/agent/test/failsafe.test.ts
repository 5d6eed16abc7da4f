import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { describe, it, type TestContext } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import type { Keyspace } from '@service-foundry/core';
import {
  eventCodec,
  nodeCodec,
  type PlacementRecord,
  type ReplicaStatus,
  readPrefix,
  readRecord,
  sampleValue,
  scrapeMetrics,
  waitFor,
} from '@service-foundry/core';
import { makeTempDir, startTestEtcd, type TestEtcd, uniqueId, uniqueKeyspace } from '@service-foundry/test-support';
import { containerState, removeClusterResources } from '@service-foundry/test-support/docker';
import { makeTestPki } from '@service-foundry/test-support/test-pki';
import { type AgentOptions, type RunningAgent, replicaResourceName } from '../src/index.js';
import { putSecret, startTestAgent } from './helpers.js';
import { testSecret } from './replication-harness.js';
import { assignmentFor, ensureReplicatedImage, statusWhere, writeReplicatedCatalog } from './replication-helpers.js';

/** `sf up`'s lease: the failsafe asks from 1.25 s, the fence point is 2.25 s (default margin 750 ms). */
const ttlSeconds = 3;
const fencePointMs = 2250;

interface Pair {
  etcd: TestEtcd;
  keys: Keyspace;
  instanceId: string;
  epoch: number;
  primaryNode: string;
  replicaNode: string;
  agents: Map<string, RunningAgent>;
  primaryContainer: string;
  pauseEtcd(): void;
  resumeEtcd(): void;
  events(kind: string): Promise<Array<{ message: string; node?: string }>>;
  start(node: string): Promise<RunningAgent>;
  assign(node: string, ordinal: number, fields: object): Promise<void>;
  putPrimary(ordinal: number, node: string): Promise<number>;
  status(
    ordinal: number,
    description: string,
    accept: (s: ReplicaStatus) => boolean,
    timeoutMs?: number,
  ): ReturnType<typeof statusWhere>;
}

/**
 * Two real agents on their own etcd (SIGSTOPped by the tests, so no other file is
 * disturbed), each with its volume server on mutual TLS: a primary on one node at a real
 * epoch, its replica on the other following it, and the placements the controller writes.
 * `alone`: the primary's agent and placement only (a one-replica instance).
 */
async function primaryAndReplica(
  t: TestContext,
  extra: Partial<AgentOptions> = {},
  { alone = false } = {},
): Promise<Pair> {
  const etcd = await startTestEtcd();
  const { client } = etcd;
  const catalogDir = await writeReplicatedCatalog(await ensureReplicatedImage());
  const keys = uniqueKeyspace();
  const clusterId = uniqueId('cl');
  const instanceId = uniqueId('inst');
  const [primaryNode, replicaNode] = [uniqueId('fsa'), uniqueId('fsb')];
  const pki = await makeTestPki([
    { name: primaryNode, address: '127.0.0.1' },
    { name: replicaNode, address: '127.0.0.1' },
  ]);
  const backups = await makeTempDir('sf-failsafe-backups');
  const agents = new Map<string, RunningAgent>();
  let paused = false;
  t.after(async () => {
    if (paused) process.kill(etcd.pid, 'SIGCONT');
    for (const agent of agents.values()) await agent.stop();
    await etcd.stop();
    await removeClusterResources(clusterId);
    await rm(catalogDir, { recursive: true, force: true });
    await pki.remove();
    await backups.remove();
  });
  const start = async (node: string) => {
    const agent = await startTestAgent(etcd.endpoint, keys, {
      node,
      leaseTtlSeconds: ttlSeconds,
      reconcileIntervalMs: 500,
      positionIntervalMs: 200,
      catalogDir,
      clusterId,
      metrics: { port: 0 },
      volumes: {
        secret: 'failsafe-test-secret-0123456789',
        backupDir: backups.path,
        fsync: false,
        tls: pki.volumeTls(node),
      },
      ...extra,
    });
    agents.set(node, agent);
    return agent;
  };
  await start(primaryNode);
  if (!alone) await start(replicaNode);
  await putSecret(client, keys, instanceId, testSecret);
  const assign = async (node: string, ordinal: number, fields: object) => {
    await client
      .put(keys.assignment(node, instanceId, ordinal))
      .value(JSON.stringify(assignmentFor(instanceId, ordinal, fields)))
      .exec();
  };
  const status: Pair['status'] = (ordinal, description, accept, timeoutMs) =>
    statusWhere(client, keys, instanceId, ordinal, description, accept, timeoutMs);
  const putPrimary = async (ordinal: number, node: string) =>
    Number(
      (
        await client
          .put(keys.primary(instanceId))
          .value(
            JSON.stringify({
              instanceId,
              ordinal,
              node,
              host: '127.0.0.1',
              port: 1,
              electedAt: new Date().toISOString(),
            }),
          )
          .exec()
      ).header.revision,
    );
  for (const [ordinal, node] of (alone ? [primaryNode] : [primaryNode, replicaNode]).entries()) {
    const placement: PlacementRecord = {
      instanceId,
      ordinal,
      node,
      placedAt: new Date().toISOString(),
      scheduler: 'test',
    };
    await client.put(keys.placement(instanceId, ordinal)).value(JSON.stringify(placement)).exec();
  }
  await assign(primaryNode, 0, { role: 'primary', epoch: 0 });
  await status(0, 'bootstrap primary running', (s) => s.state === 'running');
  const epoch = await putPrimary(0, primaryNode);
  await assign(primaryNode, 0, { role: 'primary', epoch });
  await status(0, 'primary at its epoch', (s) => s.epoch === epoch && s.role === 'primary');
  if (!alone) {
    await assign(replicaNode, 1, { role: 'replica', epoch, upstream: { host: '127.0.0.1', port: 1 } });
    await status(
      1,
      'replica following at the epoch',
      (s) => s.state === 'running' && s.role === 'replica' && s.epoch === epoch,
    );
  }
  return {
    etcd,
    keys,
    instanceId,
    epoch,
    primaryNode,
    replicaNode,
    agents,
    primaryContainer: replicaResourceName(primaryNode, { instanceId, ordinal: 0 }),
    pauseEtcd: () => {
      process.kill(etcd.pid, 'SIGSTOP');
      paused = true;
    },
    resumeEtcd: () => {
      process.kill(etcd.pid, 'SIGCONT');
      paused = false;
    },
    events: async (kind) =>
      [...(await readPrefix(client, eventCodec, keys.events())).items.values()]
        .map((e) => e.value)
        .filter((e) => e.kind === kind),
    start,
    assign,
    putPrimary,
    status,
  };
}

describe('failsafe: a primary lives through an etcd outage while its replica promises (real agents, real etcd)', () => {
  it('R5/P3/P6: etcd held past the lease, the primary is never killed; the lift event says so', async (t) => {
    const pair = await primaryAndReplica(t);
    // C2: the primary's status names the node it asks, as read at or after its epoch.
    const published = await pair.status(0, 'the primary listing its peers', (s) =>
      Boolean(s.peers && BigInt(s.peers.revision) >= BigInt(pair.epoch)),
    );
    assert.deepEqual(published.peers?.nodes, [pair.replicaNode]);
    const before = await containerState(pair.primaryContainer);
    assert.equal(before?.State.Running, true);
    pair.pauseEtcd();
    // The fault's duration, not a synchronization: etcd is held 2.5 leases long.
    await delay(ttlSeconds * 2500);
    const during = await containerState(pair.primaryContainer);
    // What an operator's dashboard shows meanwhile (docs/alerts.yml: SfFailsafeKeepingPrimaries).
    const scrape = async (node: string, family: string) =>
      sampleValue((await scrapeMetrics(pair.agents.get(node)?.metricsUrl ?? '')).samples, family);
    const kept = await scrape(pair.primaryNode, 'sf_agent_failsafe_kept_primaries');
    const promised = await scrape(pair.replicaNode, 'sf_agent_failsafe_promises');
    pair.resumeEtcd();
    assert.equal(during?.State.Running, true, 'running at the end of the outage');
    assert.equal(during?.State.StartedAt, before?.State.StartedAt, 'the same run: never killed and restarted');
    assert.equal(kept, 1, 'the primary counted as kept on promises');
    assert.equal(promised, 1, 'the replica counts its promise');
    const lifted = await waitFor(
      async () => (await pair.events('node-self-fenced')).find((e) => e.message.includes(`node ${pair.primaryNode} `)),
      { description: "the primary's node lifting its fence", timeoutMs: 20_000 },
    );
    assert.match(lifted.message, /killed no primary/);
    assert.ok(lifted.message.includes(`kept ${pair.instanceId}/0 writing on the failsafe promises`), lifted.message);
    // The lift can come before the agent learns the lease itself expired meanwhile; that starts
    // a short second episode that ends once P6 has read primary/<id> again (CI saw it).
    await waitFor(async () => pair.agents.get(pair.primaryNode)?.selfFenced() === false, {
      description: "the primary's node out of its fence, primaries re-verified",
      timeoutMs: 20_000,
    });
    const after = await containerState(pair.primaryContainer);
    assert.equal(
      after?.State.StartedAt,
      before?.State.StartedAt,
      'still the same run after the lease is back (P6 kept it)',
    );
  });

  it('P7: a primary with no other replica is kept through the outage, and says why', async (t) => {
    const lone = await primaryAndReplica(t, {}, { alone: true });
    const published = await lone.status(0, 'the primary listing no peers, read at or after its epoch', (s) =>
      Boolean(s.peers && BigInt(s.peers.revision) >= BigInt(lone.epoch)),
    );
    assert.deepEqual(published.peers?.nodes, []);
    const before = await containerState(lone.primaryContainer);
    lone.pauseEtcd();
    // The fault's duration, not a synchronization: etcd is held 2.5 leases long.
    await delay(ttlSeconds * 2500);
    const during = await containerState(lone.primaryContainer);
    lone.resumeEtcd();
    assert.equal(during?.State.Running, true, 'running at the end of the outage');
    assert.equal(during?.State.StartedAt, before?.State.StartedAt, 'never killed and restarted');
    const lifted = await waitFor(
      async () => (await lone.events('node-self-fenced')).find((e) => e.message.includes(`node ${lone.primaryNode} `)),
      { description: "the primary's node lifting its fence", timeoutMs: 20_000 },
    );
    assert.match(lifted.message, /killed no primary/);
    assert.ok(lifted.message.includes(`kept ${lone.instanceId}/0 writing with no other replica`), lifted.message);
    // C2's other half: a replica placed later (a plan change) is listed once its placement is
    // read, so the controller can give it a role.
    const later: PlacementRecord = {
      instanceId: lone.instanceId,
      ordinal: 1,
      node: 'fs-later-node',
      placedAt: new Date().toISOString(),
      scheduler: 'test',
    };
    const placed = await lone.etcd.client
      .put(lone.keys.placement(lone.instanceId, 1))
      .value(JSON.stringify(later))
      .exec();
    const relisted = await lone.status(0, 'the primary listing the replica placed later', (s) =>
      Boolean(s.peers && BigInt(s.peers.revision) >= BigInt(placed.header.revision)),
    );
    assert.deepEqual(relisted.peers?.nodes, ['fs-later-node']);
  });

  it('P4: with its replica’s agent gone, the primary is killed before the lease could expire, as without failsafe', async (t) => {
    const pair = await primaryAndReplica(t);
    await pair.agents.get(pair.replicaNode)?.stop();
    pair.agents.delete(pair.replicaNode);
    pair.pauseEtcd();
    await waitFor(async () => (await containerState(pair.primaryContainer))?.State.Running === false, {
      description: 'the uncovered primary killed',
      timeoutMs: 10_000,
      intervalMs: 50,
    });
    pair.resumeEtcd();
    // The agent's own account, recorded once etcd is back: when it asked Docker to kill, and why.
    const lifted = await waitFor(
      async () => (await pair.events('node-self-fenced')).find((e) => e.message.includes(`node ${pair.primaryNode} `)),
      { description: "the primary's node lifting its fence", timeoutMs: 20_000 },
    );
    t.diagnostic(lifted.message);
    const sinceRenewalMs = Number(/\/0 \(\+(\d+) ms: no failsafe cover/.exec(lifted.message)?.[1]);
    assert.ok(
      sinceRenewalMs < ttlSeconds * 1000,
      `kill asked ${sinceRenewalMs} ms after the last renewal: before the lease could expire`,
    );
    assert.ok(sinceRenewalMs >= fencePointMs, `not before the fence point (${sinceRenewalMs} ms)`);
  });

  it('P6: after a lost lease the primary reads primary/<id> again, and dies if a promotion happened meanwhile', async (t) => {
    const pair = await primaryAndReplica(t);
    await pair.agents.get(pair.replicaNode)?.stop();
    pair.agents.delete(pair.replicaNode);
    const before = await containerState(pair.primaryContainer);
    const node = await readRecord(pair.etcd.client, nodeCodec, pair.keys.node(pair.primaryNode));
    assert.ok(node && node.lease !== '0');
    // The controller promoted the other replica (C1 let it: the node key will vanish now),
    // then the lease goes, as an operator's `etcdctl lease revoke` would take it.
    await pair.putPrimary(1, pair.replicaNode);
    await pair.etcd.client.leaseClient.leaseRevoke({ ID: node.lease });
    const lifted = await waitFor(
      async () => (await pair.events('node-self-fenced')).find((e) => e.message.includes(`node ${pair.primaryNode} `)),
      { description: "the primary's node fencing itself and lifting it", timeoutMs: 20_000 },
    );
    t.diagnostic(lifted.message);
    assert.match(lifted.message, /killed .*\/0 \(\+\d+ ms: primary\/\S+ moved while the lease was lost/);
    const after = await containerState(pair.primaryContainer);
    assert.equal(after?.State.Running, false, 'killed, and not started again: primary/<id> names another replica');
    assert.equal(after?.State.StartedAt, before?.State.StartedAt);
  });

  it('G1/R4: a replica that promised does not become primary until the promise ends, and refuses to promise once assigned primary', async (t) => {
    // The primary asks all the time (askAfterMs 0), as it would through an outage.
    const pair = await primaryAndReplica(t, { failsafe: { askAfterMs: 0 } });
    const replicaAgent = pair.agents.get(pair.replicaNode) as RunningAgent;
    assert.ok(replicaAgent);
    const epoch = await pair.putPrimary(1, pair.replicaNode);
    const assignedAt = Date.now();
    await pair.assign(pair.replicaNode, 1, { role: 'primary', epoch });
    const held = await pair.status(
      1,
      'the claim held by the promise',
      (s) => /failsafe: promised/.test(s.message),
      10_000,
    );
    assert.match(held.message, /not to take over for another \d+ ms/);
    const promoted = await pair.status(
      1,
      'promoted once the promise ran out',
      (s) => s.role === 'primary' && s.epoch === epoch,
      20_000,
    );
    const heldMs = Date.now() - assignedAt;
    t.diagnostic(`promoted ${heldMs} ms after the assignment`);
    assert.equal(promoted.epoch, epoch);
    assert.ok(heldMs >= 1000, `held while the primary's grants were fresh (${heldMs} ms)`);
  });
});
