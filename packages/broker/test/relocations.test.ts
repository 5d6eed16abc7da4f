import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  type EventRecord,
  json,
  type NodeControlRecord,
  type NodeFenceRecord,
  type PlacementRecord,
  type PrimaryRecord,
  type RelocationRecord,
  readPrefix,
  readRecord,
  relocationCodec,
  type TransferStatusRecord,
} from '@service-foundry/core';
import { uniqueId } from '@service-foundry/test-support';
import { assertOsbError, type CallOptions, username } from '@service-foundry/test-support/broker-calls';
import type { InstanceDetail } from '../src/index.js';
import { type Harness, startHarness } from './helpers.js';

describe('broker: relocation requests (sf relocate)', () => {
  let h: Harness;
  const id = uniqueId('pg');
  const name = uniqueId('pg1');
  const waitingId = uniqueId('waiting');
  const now = () => new Date().toISOString();

  const relocate = (instance: string, options: CallOptions = {}) =>
    h.call('POST', `/sf/v1/instances/${encodeURIComponent(instance)}/relocate`, options);
  const relocations = async () =>
    [...(await readPrefix(h.client, relocationCodec, h.keys.instanceRelocations(id))).items.values()].map(
      (r) => r.value,
    );
  const setPhase = async (ordinal: number, phase: RelocationRecord['phase']) => {
    const current = await readRecord(h.client, relocationCodec, h.keys.relocation(id, ordinal));
    assert.ok(current);
    const next: RelocationRecord = { ...current.value, phase, message: phase, updatedAt: now() };
    await h.client.put(h.keys.relocation(id, ordinal)).value(json(next)).exec();
  };

  before(async () => {
    h = await startHarness();
    for (const [instanceId, instanceName] of [
      [id, name],
      [waitingId, uniqueId('waiting-db')],
    ] as const) {
      const res = await h.provision(instanceId, { context: { instance_name: instanceName } });
      assert.equal(res.status, 202, res.text);
    }
    // What agents, the scheduler and the controller would have written: five nodes, two of
    // the instance's replicas placed (0 on node-1, the primary 1 on node-2).
    const { client, keys } = h;
    for (const node of ['node-1', 'node-2', 'node-3', 'node-4', 'node-5', 'node-6']) {
      await h.putNode(node);
    }
    const control = (node: string, cordoned: boolean, draining: boolean): NodeControlRecord => ({
      node,
      cordoned,
      draining,
      reason: `${draining ? 'drain' : 'cordon'} for the test`,
      updatedAt: now(),
      by: 'test',
    });
    await client
      .put(keys.nodeControl('node-3'))
      .value(json(control('node-3', true, false)))
      .exec();
    await client
      .put(keys.nodeControl('node-5'))
      .value(json(control('node-5', true, true)))
      .exec();
    const fence: NodeFenceRecord = { node: 'node-4', state: 'fenced', reason: 'test', by: 'controller', at: now() };
    await client.put(keys.fence('node-4')).value(json(fence)).exec();
    for (const [ordinal, node] of [
      [0, 'node-1'],
      [1, 'node-2'],
    ] as const) {
      const placement: PlacementRecord = { instanceId: id, ordinal, node, placedAt: now(), scheduler: 'test' };
      await client.put(keys.placement(id, ordinal)).value(json(placement)).exec();
    }
    const primary: PrimaryRecord = {
      instanceId: id,
      ordinal: 1,
      node: 'node-2',
      host: '10.0.0.1',
      port: 5432,
      electedAt: now(),
    };
    await client.put(keys.primary(id)).value(json(primary)).exec();
    await h.markReady(id);
  });
  after(async () => {
    await h?.close();
  });

  it('rejects bad bodies with every problem listed, and writes nothing', async () => {
    const before = await h.dump();
    const cases: unknown[] = [
      { ordinal: -1 },
      { ordinal: 1.5 },
      { ordinal: '0' },
      { to: 'two words' },
      { to: 7 },
      { keep_source: 'yes' },
      { force: true },
      ['node-2'],
      'node-2',
    ];
    for (const body of cases) {
      const res = await relocate(name, { body });
      assert.equal(res.status, 400, `${JSON.stringify(body)}: ${res.text}`);
      assertOsbError(res.body, 'BadRequest');
    }
    const many = await relocate(name, { body: { ordinal: -1, to: '../x', keep_source: 1, force: true } });
    assert.equal(many.status, 400);
    const description = (many.body as { description: string }).description;
    for (const part of ['ordinal must be', 'to must be a node name', 'keep_source must be', 'unknown field "force"']) {
      assert.ok(description.includes(part), `${description} names ${part}`);
    }
    const unknown = await relocate('no-such-instance', { body: { to: 'node-3' } });
    assert.equal(unknown.status, 404, unknown.text);
    assertOsbError(unknown.body, 'NotFound');
    const unauthenticated = await relocate(name, { body: {}, auth: null });
    assert.equal(unauthenticated.status, 401);
    assert.equal(await h.dump(), before, 'no key changed');
  });

  it('refuses a target node that cannot take the replica (422), and an instance or replica not in shape (409)', async () => {
    const before = await h.dump();
    const unsuitable: Array<[Record<string, unknown>, RegExp]> = [
      [{ ordinal: 0, to: 'node-1' }, /already on node node-1/],
      [{ ordinal: 0, to: 'node-9' }, /node node-9 is not live/],
      [{ ordinal: 0, to: 'node-3' }, /node node-3 is cordoned \(cordon for the test\)/],
      [{ ordinal: 0, to: 'node-4' }, /node node-4 is fenced/],
      [{ ordinal: 0, to: 'node-5' }, /node node-5 is being drained/],
      [
        { ordinal: 0, to: 'node-2' },
        /replica 1 of .* is on node node-2; two replicas of one instance never share a node/,
      ],
    ];
    for (const [body, reason] of unsuitable) {
      const res = await relocate(name, { body });
      assert.equal(res.status, 422, `${JSON.stringify(body)}: ${res.text}`);
      assertOsbError(res.body, 'UnsuitableNode');
      assert.match((res.body as { description: string }).description, reason);
    }
    const unplaced = await relocate(name, { body: { ordinal: 2 } });
    assert.equal(unplaced.status, 409, unplaced.text);
    assert.match((unplaced.body as { description: string }).description, /replica 2 of .* is not placed/);
    const waiting = await relocate(waitingId, { body: {} });
    assert.equal(waiting.status, 409, waiting.text);
    assert.match((waiting.body as { description: string }).description, /is provisioning$/);
    assert.equal(await h.dump(), before, 'no key changed');
  });

  it('records one relocation of the primary by default, by name, with an event; shows it in sf service', async () => {
    const res = await relocate(name, {
      body: { to: 'node-6', keep_source: true },
      headers: { 'x-sf-operator': 'alice' },
    });
    assert.equal(res.status, 202, res.text);
    const record = res.body as RelocationRecord;
    assert.deepEqual(
      { ...record, requestedAt: '', updatedAt: '' },
      {
        instanceId: id,
        ordinal: 1,
        from: 'node-2',
        to: 'node-6',
        keepSource: true,
        phase: 'requested',
        message: 'requested',
        reason: 'operator',
        requestedBy: 'alice',
        requestedAt: '',
        updatedAt: '',
      },
    );
    assert.deepEqual(await relocations(), [record], 'exactly one record, as answered');
    const events = (await h.call('GET', '/sf/v1/events?limit=50')).body as EventRecord[];
    const requested = events.filter((e) => e.kind === 'relocation-requested');
    assert.equal(requested.length, 1);
    assert.equal(requested[0]?.instanceId, id);
    assert.match(requested[0]?.message ?? '', /replica 1 .* from node-2 to node-6 requested by alice/);

    // The controller reports a pre-copy under way; the agent on node-6 reports its transfer.
    await setPhase(1, 'copying');
    const transfer: TransferStatusRecord = {
      instanceId: id,
      ordinal: 1,
      node: 'node-6',
      from: { node: 'node-2', volume: `replica.${id}.1` },
      round: 1,
      state: 'copying',
      message: 'pre-copy',
      progress: {
        bytes: 512_000_000,
        files: 1020,
        plannedBytes: 1_070_000_000,
        plannedFiles: 2048,
        elapsedMs: 2200,
        mbPerSecond: 231,
      },
      updatedAt: now(),
    };
    await h.client
      .put(h.keys.transfer(id, 1, 'node-6'))
      .value(json(transfer))
      .exec();
    const listed = await h.call('GET', `/sf/v1/instances/${id}/relocations`);
    assert.equal(listed.status, 200, listed.text);
    const body = listed.body as { relocations: RelocationRecord[]; transfers: TransferStatusRecord[] };
    assert.deepEqual(
      body.relocations.map((r) => [r.ordinal, r.phase, r.to]),
      [[1, 'copying', 'node-6']],
    );
    assert.deepEqual(body.transfers, [transfer]);
    const detail = (await h.call('GET', `/sf/v1/instances/${name}`)).body as InstanceDetail;
    assert.equal(detail.relocation?.phase, 'copying');
    assert.equal(detail.relocation?.from, 'node-2');
  });

  it('refuses a second relocation of a replica while one runs, and allows it once that one finished', async () => {
    const before = await h.dump();
    const second = await relocate(name, { body: { ordinal: 1 } });
    assert.equal(second.status, 409, second.text);
    assert.match((second.body as { description: string }).description, /already being relocated .*\(phase copying\)/);
    assert.equal(await h.dump(), before, 'no key changed');

    await setPhase(1, 'done');
    const again = await relocate(name, { body: { ordinal: 1, to: 'node-1' } });
    assert.equal(again.status, 422, 'node-1 holds replica 0');
    const next = await relocate(name, { body: { ordinal: 1 } });
    assert.equal(next.status, 202, next.text);
    const record = next.body as RelocationRecord;
    assert.equal(record.to, undefined, 'without --to the controller picks the node');
    assert.equal(record.requestedBy, username, 'without X-SF-Operator, the operator the request was authenticated as');
    assert.equal(record.keepSource, false);
    assert.deepEqual(await relocations(), [record]);
  });

  it('lets only one of two concurrent requests for the same replica through', async () => {
    const results = await Promise.all([
      relocate(name, { body: { ordinal: 0 } }),
      relocate(id, { body: { ordinal: 0, to: 'node-6' } }),
    ]);
    assert.deepEqual(results.map((r) => r.status).sort(), [202, 409], results.map((r) => r.text).join('\n'));
    const winner = results.find((r) => r.status === 202)?.body as RelocationRecord;
    const stored = await readRecord(h.client, relocationCodec, h.keys.relocation(id, 0));
    assert.deepEqual(stored?.value, winner);
  });
});
