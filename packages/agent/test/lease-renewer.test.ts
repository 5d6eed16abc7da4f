import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { connectEtcd, EventLog, waitFor } from '@service-foundry/core';
import { silentLogger, startTestEtcd, uniqueId, uniqueKeyspace } from '@service-foundry/test-support';
import { startTestEtcdMembers, type TestEtcdMembers } from '@service-foundry/test-support/etcd-members';
import { LeaseRenewer, renewerTiming } from '../src/lease-renewer.js';
import { NodeRegistration } from '../src/node-registration.js';

/** The largest age of `lastRenewedAt()` seen every 5 ms for `forMs`. */
async function largestRenewalAge(lastRenewedAt: () => number, forMs: number): Promise<number> {
  let largest = 0;
  const until = Date.now() + forMs;
  while (Date.now() < until) {
    largest = Math.max(largest, Date.now() - lastRenewedAt());
    await delay(5);
  }
  return largest;
}

describe('node lease renewal through the loss of the raft leader (3 etcd members)', () => {
  let members: TestEtcdMembers;

  before(async () => {
    members = await startTestEtcdMembers(3);
  });
  after(async () => {
    await members?.stop();
  });

  test("kill -9 of the leader's member, three times: no renewal gap reaches the agent's fence point (TTL 3 s - 750 ms)", async (t) => {
    const ttlSeconds = 3;
    const fencePointMs = ttlSeconds * 1000 - 750;
    const client = connectEtcd({ endpoints: members.endpoints });
    const keys = uniqueKeyspace();
    const registration = new NodeRegistration({
      client,
      keys,
      leaseTtlSeconds: ttlSeconds,
      log: silentLogger(),
      events: new EventLog(client, keys, 'test'),
    });
    t.after(async () => {
      await registration.stop();
      client.close();
    });
    await registration.start({
      name: uniqueId('lease'),
      address: '127.0.0.1',
      capacity: { cpuMillis: 1000, memoryMb: 1024, diskMb: 1024 },
      labels: {},
    });
    const leaseId = await registration.leaseId();
    const gaps: number[] = [];
    for (let round = 0; round < 3; round++) {
      // A random phase between the kill and the last renewal.
      await delay(1000 + Math.random() * 1000);
      const leader = await members.leader();
      members.kill(leader);
      gaps.push(await largestRenewalAge(() => registration.lastRenewedAt, 4000));
      await members.restart(leader);
    }
    t.diagnostic(`largest renewal age after each kill: ${gaps.join(', ')} ms (fence point ${fencePointMs} ms)`);
    for (const gap of gaps) assert.ok(gap < fencePointMs, `a renewal gap of ${gap} ms`);
    assert.equal(await registration.leaseId(), leaseId, 'the same lease all along');
  });
});

describe('a paused etcd', () => {
  test('renewals in flight stay bounded; resumed within the TTL, the same lease is confirmed by a renewal sent during the pause', async (t) => {
    const etcd = await startTestEtcd();
    t.after(() => etcd.stop());
    // A 6 s lease: each renewal waits up to TTL/3 = 2 s for its answer, so those sent late in
    // the 1.8 s pause are still waiting when etcd resumes, even if a loaded machine takes
    // most of a second to let it answer (with 3 s, 1 s deadlines were seen to expire first).
    const ttlSeconds = 6;
    const timing = renewerTiming(ttlSeconds);
    const lease = etcd.client.lease(ttlSeconds, { autoKeepAlive: false });
    const grantedAt = Date.now();
    const id = await lease.grant();
    const confirmed: number[] = [];
    const renewer = new LeaseRenewer(lease, timing, silentLogger(), grantedAt, (sentAt) => confirmed.push(sentAt));
    t.after(() => renewer.stop());
    renewer.start();
    await waitFor(() => confirmed.length >= 2, { description: 'two confirmed renewals', timeoutMs: 10_000 });

    process.kill(etcd.pid, 'SIGSTOP');
    const pausedAt = Date.now();
    let mostInFlight = 0;
    try {
      const until = pausedAt + 1800;
      while (Date.now() < until) {
        mostInFlight = Math.max(mostInFlight, renewer.inFlight);
        await delay(20);
      }
      assert.ok(
        confirmed.every((sentAt) => sentAt < pausedAt),
        'nothing is confirmed while etcd is paused',
      );
    } finally {
      process.kill(etcd.pid, 'SIGCONT');
    }
    const resumedAt = Date.now();
    assert.ok(mostInFlight >= 2, `renewals kept going out while paused (${mostInFlight} in flight at most)`);
    assert.ok(mostInFlight <= timing.maxInFlight, `${mostInFlight} in flight at most`);
    const during = await waitFor(() => confirmed.find((sentAt) => sentAt > pausedAt && sentAt < resumedAt), {
      description: 'a renewal sent during the pause confirmed',
      timeoutMs: 5000,
    });
    assert.ok(during > pausedAt);
    assert.ok(renewer.lastConfirmedSentAt >= during, 'the getter follows the confirmations');
    const left = await etcd.client.leaseClient.leaseTimeToLive({ ID: id });
    assert.ok(Number(left.TTL) > 0, `lease ${id} still alive (TTL ${left.TTL})`);
    assert.equal(lease.revoked(), false);
  });
});
