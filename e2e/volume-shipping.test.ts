import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { waitFor } from '@service-foundry/core';
import { killNode, startCluster, type TestCluster } from '@service-foundry/test-support/cluster';
import { type RedisCredentials as Credentials, redisCli } from '@service-foundry/test-support/redis-cli';

interface Detail {
  id: string;
  primary: { node: string; ordinal: number; epoch: number } | null;
  shipping: {
    intervalSeconds: number;
    standbys: Array<{ ordinal: number; node: string; from: string; copiedAt: string | null; snapshots: number }>;
  } | null;
}

describe('volume shipping: a Redis without native replication keeps a standby copy and fails over to it', () => {
  let cluster: TestCluster;
  let credentials: Credentials;
  const detail = async (): Promise<Detail> => cluster.sfJson<Detail>('service', 'shipped', '--json');

  before(async () => {
    cluster = await startCluster(3, { sharedEngine: true, oneSchedulerOneBroker: true });
    const created = await cluster.sf('create-service', 'redis', 'standby-small', 'shipped');
    assert.equal(created.code, 0, created.stdout + created.stderr);
    const key = await cluster.sf('create-service-key', 'shipped', 'k', '--json');
    assert.equal(key.code, 0, key.stderr);
    credentials = JSON.parse(key.stdout) as Credentials;
  });
  after(async () => {
    await cluster?.destroy();
  });

  it('copies the primary volume to the standby every interval and shows the age of the last copy', async () => {
    assert.equal(await redisCli(credentials, 'SET', 'before-copy', 'kept'), 'OK');
    const writtenAt = Date.now();
    // The copy a failover would promote must be newer than the write.
    const fresh = await waitFor(
      async () => {
        const d = await detail();
        const standby = d.shipping?.standbys[0];
        return standby?.copiedAt && Date.parse(standby.copiedAt) > writtenAt + 100 ? d : undefined;
      },
      { description: 'a standby copy taken after the write', timeoutMs: 30_000, intervalMs: 250 },
    );
    assert.equal(fresh.shipping?.intervalSeconds, 5);
    assert.notEqual(fresh.shipping?.standbys[0]?.node, fresh.primary?.node, 'the standby is on another node');
    const text = (await cluster.sf('service', 'shipped')).stdout;
    assert.match(text, /standbys: +volume shipping every 5 s \(RPO 5 s\); last complete copy: node-\d [0-9.]+ s ago/);
    assert.match(text, /node-\d +- +standby +- +- +standby: copy of node-\d every 5 s/);
  });

  it('promotes the standby from its last complete copy when the primary node is killed', async () => {
    const before = await detail();
    const oldPrimary = before.primary?.node as string;
    const standbyNode = before.shipping?.standbys[0]?.node as string;
    await killNode(cluster, oldPrimary);
    const killedAt = Date.now();
    await waitFor(async () => (await redisCli(credentials, 'GET', 'before-copy')) === 'kept', {
      description: 'the key readable through the router again',
      timeoutMs: 60_000,
      intervalMs: 200,
    });
    console.log(
      `# volume-shipping failover: GET through the router works ${((Date.now() - killedAt) / 1000).toFixed(2)} s after the kill`,
    );
    const after = await detail();
    assert.equal(after.primary?.node, standbyNode, 'the standby became primary');
    assert.ok((after.primary?.epoch ?? 0) > (before.primary?.epoch ?? 0));
    assert.equal(await redisCli(credentials, 'SET', 'after-failover', 'new'), 'OK', 'it takes writes');
    const events = (await cluster.sf('events', '--json', '--limit', '200')).stdout;
    assert.match(events, /node-fenced/, 'the lost node was fenced before the promotion');
    assert.match(events, /holds the newest complete copy/);
    // The third node takes the lost replica's place and becomes the new standby.
    await waitFor(
      async () => {
        const d = await detail();
        const standby = d.shipping?.standbys.find((s) => s.from === standbyNode);
        return standby?.copiedAt ? d : undefined;
      },
      { description: 'a new standby copying from the new primary', timeoutMs: 60_000, intervalMs: 250 },
    );
  });
});
