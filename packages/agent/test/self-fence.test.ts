import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  connectEtcd,
  eventCodec,
  Keyspace,
  nodeCodec,
  type PrimaryRecord,
  readPrefix,
  readRecord,
  startEtcd,
  waitFor,
} from '@service-foundry/core';
import { replicaResourceName } from '../src/index.js';
import { containerState, putSecret, removeClusterResources, secretsKeyFile, uniqueId } from './helpers.js';
import { testSecret } from './replication-harness.js';
import { assignmentFor, ensureReplicatedImage, statusWhere, writeReplicatedCatalog } from './replication-helpers.js';

const mainJs = fileURLToPath(new URL('../dist/main.js', import.meta.url));
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
  assert.ok(existsSync(mainJs), `${mainJs} is missing: run \`npx tsc -b\` first`);
  const dir = await mkdtemp(join(tmpdir(), 'sf-agent-fence-'));
  const etcd = await startEtcd({ dataDir: join(dir, 'etcd') });
  const client = connectEtcd({ endpoints: [etcd.endpoint] });
  const catalogDir = await writeReplicatedCatalog(await ensureReplicatedImage());
  const root = `/${uniqueId('test')}`;
  const keys = new Keyspace(root);
  const node = uniqueId('fence');
  const clusterId = uniqueId('cl');
  const instanceId = uniqueId('inst');
  let etcdPaused = false;
  t.after(async () => {
    if (etcdPaused) process.kill(etcd.pid, 'SIGCONT');
    client.close();
    await etcd.stop();
    await removeClusterResources(clusterId);
    await rm(catalogDir, { recursive: true, force: true });
    await rm(dir, { recursive: true, force: true });
  });

  const configFile = join(dir, 'agent.json');
  await writeFile(
    configFile,
    JSON.stringify({
      etcdEndpoints: [etcd.endpoint],
      keyspaceRoot: root,
      secretsKeyFile,
      node,
      leaseTtlSeconds: ttlSeconds,
      reconcileIntervalMs: 500,
      positionIntervalMs: 500,
      catalogDir,
      clusterId,
    }),
  );
  const child: ChildProcess = spawn(process.execPath, [mainJs, '--config', configFile], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, SF_LOG_LEVEL: 'info' },
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  await waitFor(() => /"msg":"ready"/.test(output), { description: `"ready" from the agent; output: ${output}` });

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
      output
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

  child.kill('SIGTERM');
  assert.equal(await exited, 0, 'clean exit on SIGTERM');
});
