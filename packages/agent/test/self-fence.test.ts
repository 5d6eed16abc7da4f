import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { test } from 'node:test';
import { eventCodec, nodeCodec, type PrimaryRecord, readPrefix, readRecord, waitFor } from '@service-foundry/core';
import { startTestEtcd, uniqueId, uniqueKeyspace } from '@service-foundry/test-support';
import { containerState, removeClusterResources } from '@service-foundry/test-support/docker';
import { replicaResourceName } from '../src/index.js';
import { startAgentProcess } from './agent-process.js';
import { putSecret } from './helpers.js';
import { testSecret } from './replication-harness.js';
import { assignmentFor, ensureReplicatedImage, statusWhere, writeReplicatedCatalog } from './replication-helpers.js';

const ttlSeconds = 2;

interface KillLine {
  msg: string;
  lastRenewedAt: number;
  killRequestedAt: number;
  killConfirmedAt: number;
}

/**
 * I3 end to end: an agent process whose etcd stops answering (its own etcd, SIGSTOPped, so
 * other test files are not disturbed) kills its primary before the lease TTL runs out,
 * and once etcd is back does not start it again while the primary key names another epoch.
 */
test('a node that cannot renew its lease kills its primary before the TTL and keeps it down after a failover', async (t) => {
  const etcd = await startTestEtcd();
  const { client } = etcd;
  const catalogDir = await writeReplicatedCatalog(await ensureReplicatedImage());
  const keys = uniqueKeyspace();
  const node = uniqueId('fence');
  const clusterId = uniqueId('cl');
  const instanceId = uniqueId('inst');
  let etcdPaused = false;
  t.after(async () => {
    if (etcdPaused) process.kill(etcd.pid, 'SIGCONT');
    await etcd.stop();
    await removeClusterResources(clusterId);
    await rm(catalogDir, { recursive: true, force: true });
  });

  const agent = await startAgentProcess(t, etcd.endpoint, keys, {
    node,
    leaseTtlSeconds: ttlSeconds,
    reconcileIntervalMs: 500,
    positionIntervalMs: 500,
    catalogDir,
    clusterId,
  });

  // A bootstrap primary, then elected by hand as the controller would.
  await putSecret(client, keys, instanceId, testSecret);
  const assign = (epoch: number) =>
    client
      .put(keys.assignment(node, instanceId, 0))
      .value(JSON.stringify(assignmentFor(instanceId, 0, { role: 'primary', epoch })))
      .exec();
  const primaryRecord = (ordinal: number, on: string): string =>
    JSON.stringify({
      instanceId,
      ordinal,
      node: on,
      host: '127.0.0.1',
      port: 1,
      electedAt: new Date().toISOString(),
    } satisfies PrimaryRecord);
  await assign(0);
  await statusWhere(client, keys, instanceId, 0, 'bootstrap primary running', (s) => s.state === 'running');
  const epoch = Number(
    (await client.put(keys.primary(instanceId)).value(primaryRecord(0, node)).exec()).header.revision,
  );
  await assign(epoch);
  const elected = await statusWhere(client, keys, instanceId, 0, 'primary at its epoch', (s) => s.epoch === epoch);
  assert.equal(elected.role, 'primary');
  const name = replicaResourceName(node, { instanceId, ordinal: 0 });
  const before = await containerState(name);
  assert.equal(before?.State.Running, true);

  // etcd stops answering: keepalives go unconfirmed.
  process.kill(etcd.pid, 'SIGSTOP');
  etcdPaused = true;
  const pausedAt = Date.now();
  await waitFor(async () => (await containerState(name))?.State.Running === false, {
    description: 'the primary killed by self-fencing',
    timeoutMs: ttlSeconds * 1000 + 2000,
    intervalMs: 20,
  });
  const killed = await containerState(name);
  assert.equal(killed?.State.ExitCode, 137, 'SIGKILL');
  const finishedAt = Date.parse(killed?.State.FinishedAt ?? '');
  const line = await waitFor(
    () =>
      agent
        .output()
        .split('\n')
        .filter((l) => l.includes('self-fenced: killed a primary'))
        .map((l) => JSON.parse(l) as KillLine)[0],
    { description: 'the kill logged' },
  );
  const afterRenewalMs = finishedAt - line.lastRenewedAt;
  t.diagnostic(
    `self-fence: container dead ${afterRenewalMs} ms after the last confirmed renewal ` +
      `(${finishedAt - pausedAt} ms after etcd stopped; kill requested at +${line.killRequestedAt - line.lastRenewedAt} ms, ` +
      `confirmed by Docker at +${line.killConfirmedAt - line.lastRenewedAt} ms; TTL ${ttlSeconds * 1000} ms)`,
  );
  assert.ok(afterRenewalMs < ttlSeconds * 1000, `killed ${afterRenewalMs} ms after the last renewal, TTL is 2000 ms`);
  assert.ok(afterRenewalMs > 0);

  // Meanwhile "the controller" fails over: the primary key moves to another replica. The
  // write is sent while etcd is paused, so etcd applies it before anything the agent sends
  // once it can talk to etcd again.
  const failover = client.put(keys.primary(instanceId)).value(primaryRecord(1, 'another-node')).exec();
  process.kill(etcd.pid, 'SIGCONT');
  etcdPaused = false;
  const newEpoch = Number((await failover).header.revision);

  const refused = await statusWhere(
    client,
    keys,
    instanceId,
    0,
    'restart refused with a stale epoch once the lease is back',
    (s) => /not starting as primary: stale epoch/.test(s.message),
    15_000,
  );
  assert.match(refused.message, new RegExp(`is at epoch ${newEpoch}`));
  assert.ok(await readRecord(client, nodeCodec, keys.node(node)), 'the node is registered again');
  const fenced = await waitFor(
    async () => {
      const all = await readPrefix(client, eventCodec, keys.events());
      return [...all.items.values()].map((e) => e.value).find((e) => e.kind === 'node-self-fenced');
    },
    { description: 'a node-self-fenced event' },
  );
  assert.match(fenced.message, new RegExp(`killed ${instanceId}/0`));
  const still = await containerState(name);
  assert.equal(still?.State.Running, false, 'not restarted while the primary key names another epoch');
  assert.equal(still?.State.StartedAt, before?.State.StartedAt);

  // No failover after all (the key names it again, at a new epoch, and so does the
  // assignment): rule 2 lets the same container start again.
  const again = Number(
    (await client.put(keys.primary(instanceId)).value(primaryRecord(0, node)).exec()).header.revision,
  );
  await assign(again);
  const back = await statusWhere(
    client,
    keys,
    instanceId,
    0,
    'primary running again at the new epoch',
    (s) => s.state === 'running' && s.epoch === again,
  );
  assert.equal(back.containerId, before?.Id, 'the same container, data and all');

  agent.child.kill('SIGTERM');
  assert.equal((await agent.exited).code, 0, 'clean exit on SIGTERM');
});
