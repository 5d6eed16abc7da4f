import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startCluster, type TestCluster } from '@service-foundry/test-support/cluster';

/** What `sf chaos --json` prints for each round (the fields a user scripts against). */
interface Round {
  instance: string;
  durability: string;
  fault: string;
  target: string;
  epochBefore: number;
  epochAfter: number;
  promotedAfterMs: number | null;
  verdict: {
    acknowledged: number;
    lost: number[];
    unexpected: number[];
    longestGapMs: number;
    oldPrimaryWritesAfterPromotion: number;
    promiseKept: boolean;
    broken: string[];
  };
}

interface Detail {
  primary: { node: string; epoch: number } | null;
  replicaDetails: Array<{ state: string }>;
  bindings: Array<{ name: string }>;
}

/**
 * A short `sf chaos` rehearsal on isolated nodes (the full run is `npm run bench:chaos`):
 * the primary's node loses power, then is cut from etcd only. Each round must keep the
 * remote-fsync promise (every acknowledged write read back), fail over to a new primary,
 * never let the old primary take a direct write after the promotion, and leave the
 * instance at full strength with no key of its own left behind.
 */
describe('sf chaos on a remote-fsync Postgres (isolated nodes)', () => {
  let cluster: TestCluster;
  const detail = async (): Promise<Detail> => cluster.sfJson<Detail>('service', 'chaos-db', '--json');
  const chaos = async (...args: string[]): Promise<{ code: number; round: Round; stderr: string }> => {
    const result = await cluster.sf('chaos', 'chaos-db', ...args, '--json');
    const rounds = JSON.parse(result.stdout || '[]') as Round[];
    assert.equal(rounds.length, 1, `one round reported (exit ${result.code}): ${result.stderr}`);
    return { code: result.code, round: rounds[0] as Round, stderr: result.stderr };
  };

  before(async () => {
    cluster = await startCluster(3);
    const created = await cluster.sf(
      'create-service',
      'postgres',
      'ha-small',
      'chaos-db',
      '-c',
      JSON.stringify({ durability: 'remote-fsync' }),
    );
    assert.equal(created.code, 0, created.stdout + created.stderr);
  });
  after(async () => {
    await cluster?.destroy();
  });

  for (const fault of ['power-loss', 'etcd-partition'] as const) {
    it(`${fault} of the primary's node: promise kept, a new primary, no write to the old one`, async () => {
      const before = await detail();
      const startedAt = Date.now();
      const { code, round, stderr } = await chaos('--fault', fault, '--target', 'primary', '--duration', '10');
      assert.equal(round.verdict.promiseKept, true, round.verdict.broken.join('; '));
      assert.equal(code, 0, stderr);
      assert.equal(round.target, before.primary?.node);
      assert.ok(round.verdict.acknowledged >= 20, `writes acknowledged: ${round.verdict.acknowledged}`);
      assert.deepEqual(round.verdict.lost, []);
      assert.deepEqual(round.verdict.unexpected, []);
      assert.equal(round.verdict.oldPrimaryWritesAfterPromotion, 0);
      assert.ok(round.epochAfter > round.epochBefore, `epoch ${round.epochBefore} -> ${round.epochAfter}`);
      assert.notEqual(round.promotedAfterMs, null);
      console.log(
        `# ${fault}: promoted after ${((round.promotedAfterMs ?? 0) / 1000).toFixed(2)} s, longest write gap ${(round.verdict.longestGapMs / 1000).toFixed(2)} s`,
      );
      if (fault === 'power-loss') {
        // A node without power answers no probe: it is fenced without waiting for its lease.
        const events = JSON.parse((await cluster.sf('events', '--json', '--limit', '200')).stdout) as Array<{
          at: string;
          kind: string;
          message: string;
          node?: string;
        }>;
        const lost = events.filter(
          (e) => e.kind === 'primary-lost' && e.node === before.primary?.node && Date.parse(e.at) >= startedAt,
        );
        const story = lost.map((e) => `${e.at} ${e.message}`).join('\n');
        assert.ok(
          lost.length > 0 && lost.every((e) => /stopped answering/.test(e.message)),
          `found by the probes, not by the lease's expiry:\n${story}`,
        );
      }
      const now = await detail();
      assert.equal(now.replicaDetails.filter((r) => r.state === 'running').length, 3);
      assert.notEqual(now.primary?.node, before.primary?.node);
      assert.deepEqual(
        now.bindings.map((b) => b.name),
        [],
        'the round removed its own key',
      );
    });
  }

  it('refuses a fault it does not know, and an instance that does not exist, changing nothing', async () => {
    const unknownFault = await cluster.sf('chaos', 'chaos-db', '--fault', 'meteor');
    assert.equal(unknownFault.code, 2);
    assert.match(unknownFault.stderr, /--fault is one of power-loss, isolate/);
    const before = await detail();
    const unknownInstance = await cluster.sf('chaos', 'no-such-db', '--fault', 'power-loss');
    assert.notEqual(unknownInstance.code, 0);
    assert.match(unknownInstance.stderr, /no-such-db/);
    assert.equal((await detail()).primary?.epoch, before.primary?.epoch);
  });
});
