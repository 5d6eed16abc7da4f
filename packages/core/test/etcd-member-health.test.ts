import assert from 'node:assert/strict';
import { after, before, describe, type TestContext, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { startTestEtcdMembers, type TestEtcdMembers } from '@service-foundry/test-support/etcd-members';
import { connectEtcd } from '../src/etcd.js';

interface Renewal {
  sentAt: number;
  ok: boolean;
}

/**
 * Lease renewals the way an agent sends them: one short stream each, a 1 s deadline, one
 * every 100 ms, never waiting for the previous one. etcd3 does not retry a stream on
 * another member: whichever member the pool puts first is the only one a renewal gets.
 */
async function renewEvery100ms(lease: { keepaliveOnce(o: { deadline: Date }): Promise<unknown> }, forMs: number) {
  const renewals: Promise<Renewal>[] = [];
  const until = Date.now() + forMs;
  while (Date.now() < until) {
    const sentAt = Date.now();
    renewals.push(
      lease.keepaliveOnce({ deadline: new Date(sentAt + 1000) }).then(
        () => ({ sentAt, ok: true }),
        () => ({ sentAt, ok: false }),
      ),
    );
    await delay(100);
  }
  return Promise.all(renewals);
}

/** The longest time between the send times of two confirmed renewals (from the first one sent). */
function longestUnconfirmed(renewals: readonly Renewal[]): number {
  let last = renewals[0]?.sentAt ?? 0;
  let longest = 0;
  for (const r of renewals) {
    if (!r.ok) continue;
    longest = Math.max(longest, r.sentAt - last);
    last = r.sentAt;
  }
  return Math.max(longest, (renewals.at(-1)?.sentAt ?? last) - last);
}

/** A lease on a client of every member, both gone when the test ends. */
async function grantedLease(endpoints: string[], t: TestContext) {
  const client = connectEtcd({ endpoints });
  const lease = client.lease(10, { autoKeepAlive: false });
  await lease.grant();
  t.after(async () => {
    await lease.revoke().catch(() => undefined);
    client.close();
  });
  return lease;
}

describe('etcd member health through the loss of members (SIGSTOP: a host gone dark; kill -9)', () => {
  let members: TestEtcdMembers;

  before(async () => {
    members = await startTestEtcdMembers(3);
  });
  after(async () => {
    await members?.stop();
  });

  test('the raft leader goes dark: renewals are confirmed again within 1.5 s, three times', async (t) => {
    const lease = await grantedLease(members.endpoints, t);
    const gaps: number[] = [];
    for (let round = 0; round < 3; round++) {
      const leader = await members.leader();
      members.pause(leader);
      let renewals: Renewal[];
      try {
        renewals = await renewEvery100ms(lease, 3000);
      } finally {
        members.resume(leader);
      }
      gaps.push(longestUnconfirmed(renewals));
      // The old leader steps down once it hears the new term; wait until one leads again.
      await members.leader();
    }
    t.diagnostic(`longest stretch between confirmed renewals: ${gaps.join(', ')} ms`);
    // The followers elect a new leader after 0.5-1 s; renewals sent before that are lost
    // whatever the client does. Ranked by circuit breakers, the stretch reached 2 s and more
    // (every live member had just answered "no leader" and was refused a second).
    for (const gap of gaps) assert.ok(gap <= 1500, `no renewal confirmed for ${gap} ms`);
  });

  test('a member lost and back is used again: six leaders killed in turn, each round renewals resume within 1.5 s', async (t) => {
    const lease = await grantedLease(members.endpoints, t);
    const gaps: number[] = [];
    // By the third round each member has been lost once and must have been tried again, or
    // the last one answering is the one killed and renewals have nowhere to go. Six: while
    // the live members wait out the election, the dead leader must not be ranked above them
    // (it was, in one kill in four: 2.1-2.5 s of renewals sent to it).
    for (let round = 0; round < 6; round++) {
      const leader = await members.leader();
      const killedAt = Date.now();
      members.kill(leader);
      const renewals = await renewEvery100ms(lease, 3000);
      const firstOk = renewals.find((r) => r.ok && r.sentAt >= killedAt);
      gaps.push(firstOk ? firstOk.sentAt - killedAt : Number.POSITIVE_INFINITY);
      await members.restart(leader);
    }
    t.diagnostic(`first renewal confirmed after each kill: ${gaps.join(', ')} ms`);
    for (const gap of gaps) assert.ok(gap <= 1500, `renewals resumed ${gap} ms after a kill`);
  });
});
