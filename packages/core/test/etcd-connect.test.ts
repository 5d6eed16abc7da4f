import assert from 'node:assert/strict';
import { type AddressInfo, createServer, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { startTestEtcd, type TestEtcd, uniqueId } from '@service-foundry/test-support';
import { startTestEtcdMembers, type TestEtcdMembers } from '@service-foundry/test-support/etcd-members';
import { noop } from 'cockatiel';
import { Etcd3 } from 'etcd3';
import { connectEtcd } from '../src/etcd.js';
import { waitFor } from '../src/wait.js';

/**
 * A member cut off from the majority (here: its two peers killed) must not keep a client
 * waiting: connectEtcd asks every call for a member with a leader, so the member refuses at
 * once and the client can turn to another. etcd3 alone waits on it.
 */
describe('connectEtcd against a member without a raft leader', () => {
  let members: TestEtcdMembers;
  const key = uniqueId('connect');
  let endpoint = '';

  before(async () => {
    members = await startTestEtcdMembers(3);
    await members.client.put(key).value('v');
    const leader = await members.leader();
    // Keep a follower: the leader, once alone, would step down only after its check quorum.
    const survivor = [0, 1, 2].find((i) => i !== leader) as number;
    for (const i of [0, 1, 2]) if (i !== survivor) members.kill(i);
    endpoint = members.endpoints[survivor] as string;
    // Until its election timeout passes the survivor still names the dead leader.
    const plain = plainClient();
    try {
      await waitFor(async () => (await plain.maintenance.status()).leader === '0', {
        description: 'the survivor to report no leader',
        timeoutMs: 10_000,
        intervalMs: 50,
      });
    } finally {
      plain.close();
    }
  });
  /** etcd3 alone: no leader requirement, no retries, and `deadlineMs` on each request when given. */
  const plainClient = (deadlineMs?: number) =>
    new Etcd3({
      hosts: [endpoint],
      faultHandling: { global: noop, host: () => noop },
      ...(deadlineMs ? { defaultCallOptions: () => ({ deadline: new Date(Date.now() + deadlineMs) }) } : {}),
    });
  after(async () => {
    await members?.stop();
  });

  // Each read carries a 2 s deadline of its own: one still waiting for the member then fails
  // with DEADLINE_EXCEEDED, one the member refused fails with its answer.
  test('a read is refused with "no leader" within 2 s', async () => {
    const client = connectEtcd({ endpoints: [endpoint], requestTimeoutMs: 2000 });
    try {
      await assert.rejects(client.get(key).string(), /no leader/);
    } finally {
      client.close();
    }
  });

  test('without the leader requirement the same read is still waiting after 2 s (what the option buys)', async () => {
    const plain = plainClient(2000);
    try {
      // The deadline runs out at the client (DEADLINE_EXCEEDED) or, on a loaded machine, first
      // at the member, which carries it (UNKNOWN: context deadline exceeded).
      await assert.rejects(plain.get(key).string(), /DEADLINE_EXCEEDED|context deadline exceeded/);
    } finally {
      plain.close();
    }
  });
});

/**
 * A member that takes connections and never answers (a host behind a network that drops
 * packets looks the same to a client): after it failed once, requests go to the member
 * that answers, so one deadline is lost in all, not one in two requests.
 */
describe('connectEtcd with one member that never answers', () => {
  let etcd: TestEtcd;
  const held = new Set<Socket>();
  // Takes connections and never answers; keeps them so that the end of the test can close them.
  const tarpit = createServer((socket) => {
    held.add(socket);
  });
  let tarpitPort = 0;

  before(async () => {
    etcd = await startTestEtcd();
    await new Promise<void>((resolve) => tarpit.listen(0, '127.0.0.1', resolve));
    tarpitPort = (tarpit.address() as AddressInfo).port;
  });
  after(async () => {
    for (const socket of held) socket.destroy();
    tarpit.close();
    await etcd?.stop();
  });

  test('over 6 s of reads, one waits for a deadline (1 s): the first one the silent member took', async () => {
    const client = connectEtcd({
      endpoints: [`http://127.0.0.1:${tarpitPort}`, etcd.endpoint],
      requestTimeoutMs: 1000,
    });
    const key = uniqueId('order');
    try {
      await etcd.client.put(key).value('v');
      const started = Date.now();
      let reads = 0;
      let slow = 0;
      // Past several of the breaker's 1 s pauses: each would put the silent member on trial again.
      while (Date.now() - started < 6000) {
        const sent = Date.now();
        assert.equal(await client.get(key).string(), 'v');
        reads += 1;
        if (Date.now() - sent >= 900) slow += 1;
      }
      assert.ok(slow <= 1, `${slow} of ${reads} reads waited for a deadline`);
    } finally {
      client.close();
    }
  });
});
