import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { silentLogger } from '@service-foundry/test-support';
import { AppliedReplicas } from '../src/applied-replicas.js';
import { compileAgentConfig } from '../src/config.js';
import { FailsafePromises, maxFailsafeEntries } from '../src/failsafe-promises.js';
import { answerPromise, coveredUntil, coverOf, keepCovered, type LocalReplicaView } from '../src/failsafe-rule.js';

/**
 * Every row of the failsafe table (src/failsafe-rule.ts) that a pure function decides; the
 * rows about processes (P2, P6, C1, kills) are tested with real agents and etcd in
 * failsafe.test.ts and with a whole platform in e2e/etcd-outage.test.ts.
 */
const following = (epoch: number, extra: Partial<LocalReplicaView> = {}): LocalReplicaView => ({
  ordinal: 1,
  role: 'replica',
  epoch,
  mayBePrimary: false,
  upstreamHost: '10.0.0.1',
  assigned: { role: 'replica', epoch },
  ...extra,
});

describe('failsafe: what a replica promises (R1–R6)', () => {
  const ask = { instanceId: 'db', epoch: 40 };
  it('R1: refuses without a replica of the instance here', () => {
    assert.deepEqual(answerPromise(ask, []), { grant: false, reason: 'no replica of this instance here' });
  });
  it('R2: refuses when a local replica is or may be a primary', () => {
    const verdict = answerPromise(ask, [following(40, { mayBePrimary: true })]);
    assert.equal(verdict.grant, false);
  });
  it('R3: refuses when a local replica follows another epoch, or is not a replica', () => {
    assert.equal(answerPromise(ask, [following(39)]).grant, false);
    assert.equal(answerPromise(ask, [following(41)]).grant, false);
    assert.equal(answerPromise(ask, [following(40, { role: undefined })]).grant, false);
    assert.equal(answerPromise(ask, [following(40, { epoch: undefined })]).grant, false);
  });
  it('R4: refuses when the assignment names a newer epoch, role primary, or cannot be read', () => {
    assert.equal(answerPromise(ask, [following(40, { assigned: { role: 'replica', epoch: 41 } })]).grant, false);
    assert.equal(answerPromise(ask, [following(40, { assigned: { role: 'primary', epoch: 40 } })]).grant, false);
    assert.equal(answerPromise(ask, [following(40, { assigned: 'unreadable' })]).grant, false);
  });
  it('R6: where replicas stream from node addresses, refuses an asker that is not their upstream', () => {
    const fromPrimary = { ...ask, asker: { node: 'node-1', address: '10.0.0.1' } };
    assert.deepEqual(answerPromise(fromPrimary, [following(40)]), { grant: true });
    const fromOther = { ...ask, asker: { node: 'node-3', address: '10.0.0.3' } };
    assert.equal(answerPromise(fromOther, [following(40)]).grant, false);
    const unknownAddress = { ...ask, asker: { node: 'node-9', address: undefined } };
    assert.equal(answerPromise(unknownAddress, [following(40)]).grant, false);
    assert.equal(answerPromise(fromPrimary, [following(40, { upstreamHost: undefined })]).grant, false);
  });
  it('R5: grants when every local replica follows the asker at its epoch', () => {
    assert.deepEqual(answerPromise(ask, [following(40)]), { grant: true });
    assert.deepEqual(answerPromise(ask, [following(40, { assigned: undefined })]), { grant: true });
    assert.deepEqual(answerPromise(ask, [following(40), following(40, { ordinal: 2 })]), { grant: true });
    assert.equal(answerPromise(ask, [following(40), following(39, { ordinal: 2 })]).grant, false, 'every one');
  });
});

describe('failsafe: how long a primary is covered (P3–P5, P7)', () => {
  const timing = { promiseMs: 2000, marginMs: 750 };
  it('P3: covered until the slowest peer’s latest granted send time + promise − margin', () => {
    assert.equal(coveredUntil([{ sentAt: 10_000 }, { sentAt: 10_500 }], timing), 10_000 + 2000 - 750);
    assert.equal(keepCovered(11_249, 11_250), true);
    assert.equal(keepCovered(11_250, 11_250), false, 'killed at the end, not after');
  });
  it('P4: a peer without a grant leaves no cover', () => {
    assert.equal(coveredUntil([{ sentAt: 10_000 }, { sentAt: undefined }], timing), Number.NEGATIVE_INFINITY);
  });
  it('P3/P4 through what the primary knows: every listed peer must have granted', () => {
    const known = { nodes: ['n1', 'n2'], revision: '50' };
    const grants = new Map([['n1', 10_000]]);
    assert.equal(
      coverOf(known, 42, (n) => grants.get(n), timing),
      Number.NEGATIVE_INFINITY,
    );
    grants.set('n2', 10_500);
    assert.equal(
      coverOf(known, 42, (n) => grants.get(n), timing),
      10_000 + 2000 - 750,
    );
  });
  it('P5: peers unknown (never read, or read before the primary’s epoch): no cover, killed as without failsafe', () => {
    assert.equal(
      coverOf(undefined, 42, () => 10_000, timing),
      Number.NEGATIVE_INFINITY,
    );
    assert.equal(
      coverOf({ nodes: [], revision: '41' }, 42, () => 10_000, timing),
      Number.NEGATIVE_INFINITY,
    );
    assert.equal(
      coverOf({ nodes: ['n1'], revision: '41' }, 42, () => 10_000, timing),
      Number.NEGATIVE_INFINITY,
    );
    assert.equal(keepCovered(0, Number.NEGATIVE_INFINITY), false);
  });
  it('P7: peers read at or after the epoch, none: a lone primary is kept for as long as the lease is away', () => {
    assert.equal(
      coverOf({ nodes: [], revision: '42' }, 42, () => undefined, timing),
      Number.POSITIVE_INFINITY,
    );
    assert.equal(keepCovered(Number.MAX_SAFE_INTEGER, Number.POSITIVE_INFINITY), true);
    assert.equal(coveredUntil([], timing), Number.NEGATIVE_INFINITY, 'the grant arithmetic alone never covers');
  });
});

/** This node's replica 1 of `db`, following epoch 40 (from `upstream` when given). */
function followingAt40(upstream?: { host: string; port: number }): AppliedReplicas {
  const applied = new AppliedReplicas();
  applied.set({
    ref: { instanceId: 'db', ordinal: 1 },
    containerId: 'c1',
    serviceName: 'postgres',
    generation: 0,
    role: 'replica',
    epoch: 40,
    ...(upstream ? { upstream } : {}),
    mayBePrimary: false,
    busy: 0,
  });
  return applied;
}

describe('failsafe: the replica side keeps its promises (R5, G1, G2) and checks every call', () => {
  const setUp = (promiseMs = 2000) => {
    let now = 1_000_000;
    const applied = followingAt40();
    const promises = new FailsafePromises({
      applied,
      assignmentOf: () => undefined,
      promiseMs,
      log: silentLogger(),
      now: () => now,
    });
    return { promises, applied, advance: (ms: number) => (now += ms) };
  };
  const call = (...entries: string[]) => ({
    peer: 'sf-volumes.node-1',
    params: new URLSearchParams(entries.map((e): [string, string] => ['p', e])),
  });

  it('G2: a freshly started agent holds every claim for one promise length', () => {
    const { promises, advance } = setUp();
    assert.match(promises.hold('other')?.reason ?? '', /started 0 ms ago/);
    advance(2000);
    assert.equal(promises.hold('other'), undefined);
  });

  it('G1: a grant holds claims on that instance until it ends; a later grant extends it, never shortens it', () => {
    const { promises, advance } = setUp();
    advance(5000);
    const answer = promises.answer(call('db:40', 'gone:7'));
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.body, {
      promiseMs: 2000,
      granted: ['db'],
      refused: { gone: 'no replica of this instance here' },
    });
    assert.match(
      promises.hold('db')?.reason ?? '',
      /promised sf-volumes\.node-1 \(epoch 40\) not to take over for another 2000 ms/,
    );
    assert.equal(promises.hold('gone'), undefined, 'a refusal promises nothing');
    advance(1500);
    promises.answer(call('db:40'));
    advance(1900);
    assert.equal(promises.hold('db')?.remainingMs, 100);
    advance(100);
    assert.equal(promises.hold('db'), undefined);
  });

  it('G3: a promise ends when the primary it was given to is fenced since it began, not for an older fence', () => {
    let now = 1_000_000;
    const fences: Record<string, number> = {};
    const promises = new FailsafePromises({
      applied: followingAt40(),
      assignmentOf: () => undefined,
      promiseMs: 2000,
      log: silentLogger(),
      fencedAt: (node) => fences[node],
      now: () => now,
    });
    now += 5000;
    fences['node-1'] = now - 1; // fenced before this promise began: an earlier incident
    promises.answer(call('db:40'));
    now += 500;
    promises.answer(call('db:40')); // an extension keeps the start of the run
    assert.match(promises.hold('db')?.reason ?? '', /not to take over for another 2000 ms/);
    assert.deepEqual(promises.promisedTo('node-1'), ['db']);
    assert.deepEqual(promises.promisedTo('node-2'), []);
    fences['node-2'] = now;
    assert.ok(promises.hold('db'), 'another node fenced: the promise holds');
    fences['node-1'] = now - 400; // fenced after the promise began, before its extension
    assert.equal(promises.hold('db'), undefined, 'the primary it was given to is powered off');
    assert.deepEqual(promises.promisedTo('node-1'), [], 'and the promise is gone');
    assert.equal(promises.hold('db'), undefined);
  });

  it('R6 through the call: the asker is named by its certificate, its address by its volume server URL', () => {
    let now = 1_000_000;
    const applied = followingAt40({ host: '10.0.0.1', port: 32768 });
    const addresses: Record<string, string> = { 'node-1': '10.0.0.1', 'node-3': '10.0.0.3' };
    const promises = new FailsafePromises({
      applied,
      assignmentOf: () => undefined,
      promiseMs: 2000,
      log: silentLogger(),
      addressOfNode: (node) => addresses[node],
      now: () => now,
    });
    now += 5000;
    const asked = (peer: string) =>
      promises.answer({ peer, params: new URLSearchParams([['p', 'db:40']]) }).body as { granted: string[] };
    assert.deepEqual(asked('sf-volumes.node-3').granted, [], 'another node cannot hold back a promotion');
    assert.equal(promises.hold('db'), undefined);
    assert.deepEqual(asked('sf-volumes.node-1').granted, ['db']);
    assert.ok(promises.hold('db'));
  });

  it('refuses malformed calls as a whole, promising nothing', () => {
    const { promises, advance } = setUp();
    advance(5000);
    for (const bad of [
      call(),
      call('db'),
      call('db:0'),
      call('db:-1'),
      call('db:40x'),
      call('../db:40'),
      call(`${'a'.repeat(129)}:40`),
      call(...Array.from({ length: maxFailsafeEntries + 1 }, () => 'db:40')),
      { peer: 'x', params: new URLSearchParams('p=db:40&promote=1') },
    ]) {
      assert.equal(promises.answer(bad).status, 400, bad.params.toString().slice(0, 60));
    }
    assert.equal(promises.hold('db'), undefined);
  });
});

describe('failsafe: config', () => {
  const base = { etcdEndpoints: ['http://127.0.0.1:2379'], secretsKeyFile: '/k', node: 'n', catalogDir: '/c' };
  it('defaults, and refuses timings under which a cover could not be renewed in time', () => {
    const config = compileAgentConfig({ ...base, leaseTtlSeconds: 3 });
    assert.deepEqual(config.failsafe, {
      enabled: true,
      promiseMs: 2250,
      askAfterMs: 1250,
      askIntervalMs: 250,
      callTimeoutMs: 500,
    });
    // Defaults follow the lease: a longer margin gets a longer promise; a lease too short to wait one keepalive asks always.
    assert.equal(compileAgentConfig({ ...base, leaseTtlSeconds: 10 }).failsafe.promiseMs, 2500 + 250 + 500 + 750);
    assert.equal(compileAgentConfig({ ...base, leaseTtlSeconds: 1 }).failsafe.askAfterMs, 0);
    assert.throws(
      () => compileAgentConfig({ ...base, leaseTtlSeconds: 3, failsafe: { promiseMs: 1400 } }),
      /failsafe\/promiseMs must be above/,
    );
    assert.throws(
      () => compileAgentConfig({ ...base, leaseTtlSeconds: 3, failsafe: { askAfterMs: 2500 } }),
      /failsafe\/askAfterMs must be below the fence point/,
    );
    assert.throws(
      () => compileAgentConfig({ ...base, failsafe: { promise: 1 } }),
      /\/failsafe: unknown field "promise"/,
    );
    assert.equal(compileAgentConfig({ ...base, failsafe: { enabled: false, promiseMs: 100 } }).failsafe.enabled, false);
  });
});
