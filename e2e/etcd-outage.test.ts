import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { waitFor } from '@service-foundry/core';
import { startCluster, type TestCluster } from '@service-foundry/test-support/cluster';
import { longestGapMs, lostWrites, Writer } from '@service-foundry/test-support/writer';

interface Detail {
  primary: { node: string; ordinal: number; epoch: number } | null;
  replicaDetails: Array<{ state: string }>;
}

interface Event {
  at: string;
  kind: string;
  message: string;
}

/** How long etcd is held: past the agents' lease (3 s), so every lease expires at once. */
const outageMs = 8000;

/**
 * etcd stopped (SIGSTOP: it neither answers nor exits) under a writer on a three-replica
 * Postgres with remote-fsync, and another on a one-replica Postgres (`small`). The failsafe
 * keeps both primaries: the replicated one because both its replicas promise not to take
 * over, the lone one because it has no other replica that could (P7); neither is killed
 * when its lease runs out, and writes go on through the outage. When etcd is back every
 * lease has expired together; the controller waits for the agents to register again instead
 * of failing over, and each primary, having read `primary/<id>` again, stays what it was at
 * the same epoch.
 */
describe('etcd outage: writes go on (failsafe), no failover storm when etcd comes back', () => {
  let cluster: TestCluster;
  let uri = '';
  let loneUri = '';
  const detail = async (name = 'eo-db'): Promise<Detail> => {
    const result = await cluster.sf('service', name, '--json');
    assert.equal(result.code, 0, result.stderr);
    return JSON.parse(result.stdout) as Detail;
  };
  const allRunning = () =>
    waitFor(async () => (await detail()).replicaDetails.filter((r) => r.state === 'running').length === 3, {
      description: 'three running replicas',
      timeoutMs: 240_000,
      intervalMs: 500,
    });

  before(async () => {
    cluster = await startCluster(3, { sharedEngine: true });
    const created = await cluster.sf('create-service', 'postgres', 'ha-small', 'eo-db');
    assert.equal(created.code, 0, created.stdout + created.stderr);
    const key = await cluster.sf('create-service-key', 'eo-db', 'writer', '--json');
    assert.equal(key.code, 0, key.stderr);
    uri = (JSON.parse(key.stdout) as { uri: string }).uri;
    const lone = await cluster.sf('create-service', 'postgres', 'small', 'eo-one');
    assert.equal(lone.code, 0, lone.stdout + lone.stderr);
    const loneKey = await cluster.sf('create-service-key', 'eo-one', 'writer', '--json');
    assert.equal(loneKey.code, 0, loneKey.stderr);
    loneUri = (JSON.parse(loneKey.stdout) as { uri: string }).uri;
    await Writer.prepare(uri);
    await Writer.prepare(loneUri);
    await allRunning();
  });
  after(async () => {
    await cluster?.destroy();
  });

  it('keeps the primaries and their epochs, writes go on through the outage, nothing acknowledged is lost', async () => {
    const before = await detail();
    assert.ok(before.primary);
    const loneBefore = await detail('eo-one');
    assert.ok(loneBefore.primary);
    const etcd = JSON.parse(await readFile(join(cluster.home, 'run', 'etcd.supervision.json'), 'utf8')) as {
      pid: number;
    };
    const writer = new Writer(uri);
    const loneWriter = new Writer(loneUri);
    writer.start();
    loneWriter.start();
    let resumedAt = 0;
    let stoppedAt = 0;
    try {
      await waitFor(() => writer.acked.length >= 50 && loneWriter.acked.length >= 50, {
        description: '50 acknowledged writes on each',
        timeoutMs: 60_000,
      });
      stoppedAt = Date.now();
      process.kill(etcd.pid, 'SIGSTOP');
      try {
        // The fault's duration, not a synchronization: etcd is held this long.
        await delay(outageMs);
      } finally {
        process.kill(etcd.pid, 'SIGCONT');
      }
      resumedAt = Date.now();
      await waitFor(() => writer.firstAckAfter(resumedAt) && loneWriter.firstAckAfter(resumedAt), {
        description: 'writes on each after etcd is back',
        timeoutMs: 120_000,
        intervalMs: 200,
      });
      // A few more after etcd's return: P6 (the primary reads primary/<id> again) happens then.
      const lastBefore = writer.acked.length;
      const loneBefore = loneWriter.acked.length;
      await waitFor(() => writer.acked.length >= lastBefore + 20 && loneWriter.acked.length >= loneBefore + 20, {
        description: '20 more writes on each',
        timeoutMs: 60_000,
      });
    } finally {
      await Promise.all([writer.stop(), loneWriter.stop()]);
    }
    const pastTheLease = (w: Writer) => w.acked.filter((a) => a.at > stoppedAt + 3000 && a.at < resumedAt).length;
    const duringOutage = pastTheLease(writer);
    const loneDuringOutage = pastTheLease(loneWriter);
    console.log(
      `# ha-small: ${duringOutage} writes acknowledged while etcd was stopped and every lease past its TTL; longest write gap from the stop on ${longestGapMs(writer.acked, stoppedAt)} ms`,
    );
    console.log(
      `# small (one replica): ${loneDuringOutage} writes acknowledged past the lease; longest write gap ${longestGapMs(loneWriter.acked, stoppedAt)} ms`,
    );
    const after = await detail();
    assert.deepEqual((await detail('eo-one')).primary, loneBefore.primary, 'the lone primary at the same epoch');
    const events = JSON.parse((await cluster.sf('events', '--json', '--limit', '300')).stdout) as Event[];
    const since = events.filter((e) => Date.parse(e.at) >= resumedAt - outageMs);
    const story = since.map((e) => `${e.at} ${e.kind}: ${e.message}`).join('\n');
    assert.deepEqual(after.primary, before.primary, `the same primary at the same epoch: no failover\n${story}`);
    const storm = since.filter((e) => /^(failover-promote|node-fenc)/.test(e.kind));
    assert.deepEqual(storm, [], 'nothing fenced or promoted');
    // Every node's fence lifted without killing anything: the primary lived on its cover.
    const lifted = since.filter((e) => e.kind === 'node-self-fenced');
    assert.ok(lifted.length > 0, `the nodes saw their leases lapse\n${story}`);
    for (const event of lifted) assert.match(event.message, /killed no primary/, story);
    assert.ok(duringOutage > 0, 'writes were acknowledged while etcd was stopped, past the lease TTL');
    assert.ok(loneDuringOutage > 0, 'the one-replica instance too (P7)');
    assert.deepEqual(await lostWrites(uri, writer.acked), []);
    assert.deepEqual(await lostWrites(loneUri, loneWriter.acked), []);
    await allRunning();
  });
});
