import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  type EventRecord,
  eventCodec,
  json,
  type PlacementRecord,
  type PrimaryRecord,
  primaryCodec,
  type ReplicaStatus,
  readPrefix,
  readRecord,
  type SwitchoverRecord,
  switchoverCodec,
} from '@service-foundry/core';
import { uniqueId } from '@service-foundry/test-support';
import { assertOsbError, type CallOptions, osbLogin } from '@service-foundry/test-support/broker-calls';
import { type Harness, startHarness } from './helpers.js';

/** The catalog's postgres ha-small plan. */
const haSmallPlanId = '4ff07bf1-4cb4-487f-b373-fa97afb00ef8';

/**
 * The broker side of `sf switchover` on a real etcd with no controller running: what it
 * validates and refuses itself, and the record it leaves for the controller (which the
 * e2e test and the controller's model test cover).
 */
describe('broker: switchover requests (sf switchover)', () => {
  let h: Harness;
  const id = uniqueId('ha');
  const name = uniqueId('ha-db');
  const singleName = uniqueId('single-db');
  const now = () => new Date().toISOString();
  const switchover = (instance: string, options: CallOptions = {}) =>
    h.call('POST', `/sf/v1/instances/${encodeURIComponent(instance)}/switchover`, options);

  before(async () => {
    h = await startHarness();
    const ha = await h.provision(id, { plan_id: haSmallPlanId, context: { instance_name: name } });
    assert.equal(ha.status, 202, ha.text);
    const singleId = uniqueId('single');
    const single = await h.provision(singleId, { context: { instance_name: singleName } });
    assert.equal(single.status, 202, single.text);
    // What the scheduler, the controller and the agents would have written: replica 0 on
    // node-1 is primary, 1 and 2 follow it (2 the most advanced).
    const { client, keys } = h;
    for (const ordinal of [0, 1, 2]) {
      const node = `node-${ordinal + 1}`;
      await h.putNode(node);
      const placement: PlacementRecord = { instanceId: id, ordinal, node, placedAt: now(), scheduler: 'test' };
      await client.put(keys.placement(id, ordinal)).value(json(placement)).exec();
      const status: ReplicaStatus = {
        instanceId: id,
        ordinal,
        node,
        state: 'running',
        message: 'ready',
        updatedAt: now(),
        role: ordinal === 0 ? 'primary' : 'replica',
        position: String(1000 + ordinal),
        positionAt: now(),
      };
      await client.put(keys.status(id, ordinal)).value(json(status)).exec();
    }
    const primary: PrimaryRecord = { instanceId: id, ordinal: 0, node: 'node-1', host: 'h', port: 1, electedAt: now() };
    await client.put(keys.primary(id)).value(json(primary)).exec();
    await h.markReady(id);
    await h.markReady(singleId);
  });
  after(async () => {
    await h?.close();
  });

  it('rejects bad bodies, unknown instances and the platform login, writing nothing', async () => {
    const before = await h.dump();
    for (const body of [
      { to: -1 },
      { to: 1.5 },
      { to: 'two words' },
      { to: 1000 },
      { to: true },
      { ordinal: 1 },
      ['x'],
    ]) {
      const res = await switchover(name, { body });
      assert.equal(res.status, 400, `${JSON.stringify(body)}: ${res.text}`);
      assertOsbError(res.body, 'BadRequest');
    }
    const unknown = await switchover('no-such-instance', { body: {} });
    assert.equal(unknown.status, 404, unknown.text);
    const platform = await switchover(name, { body: {}, auth: osbLogin });
    assert.equal(platform.status, 403, platform.text);
    const noReplica = await switchover(name, { body: { to: 'node-9' } });
    assert.equal(noReplica.status, 404, noReplica.text);
    assert.match((noReplica.body as { description: string }).description, /has no replica on node node-9/);
    assert.equal(await h.dump(), before, 'no key changed');
  });

  it('refuses with SF_ERR_SWITCHOVER_REFUSED an unreplicated plan and a switch to the primary itself', async () => {
    const before = await h.dump();
    const cases: Array<[string, unknown, RegExp]> = [
      [singleName, {}, /has no replicas to switch over to; use a replicated plan/],
      [name, { to: 0 }, /replica 0 of .* is the primary already/],
      [name, { to: 'node-1' }, /the replica on node node-1 of .* is the primary already/],
    ];
    for (const [instance, body, reason] of cases) {
      const res = await switchover(instance, { body });
      assert.equal(res.status, 409, res.text);
      const error = res.body as { error: string; description: string; sf_code: string };
      assert.equal(error.error, 'SwitchoverRefused');
      assert.equal(error.sf_code, 'SF_ERR_SWITCHOVER_REFUSED');
      assert.match(error.description, reason);
    }
    assert.equal(await h.dump(), before, 'no key changed');
  });

  it('records a switchover to the most advanced replica by default, once; GET reads it back', async () => {
    const res = await switchover(name, { body: {} });
    assert.equal(res.status, 202, res.text);
    const asked = res.body as SwitchoverRecord;
    assert.deepEqual(
      [asked.phase, asked.from, asked.to],
      ['requested', { ordinal: 0, node: 'node-1' }, { ordinal: 2, node: 'node-3' }],
    );
    const stored = await readRecord(h.client, switchoverCodec, h.keys.switchover(id));
    const primary = await readRecord(h.client, primaryCodec, h.keys.primary(id));
    assert.equal(stored?.value.fromEpoch, Number(primary?.modRevision), 'the epoch the primary served at');
    assert.deepEqual(stored?.value.to, asked.to);
    const again = await switchover(name, { body: { to: 1 } });
    assert.equal(again.status, 409, again.text);
    assert.match((again.body as { description: string }).description, /already under way \(requested\)/);
    const read = await h.call('GET', `/sf/v1/instances/${name}/switchover`);
    assert.equal(read.status, 200, read.text);
    assert.deepEqual(read.body, stored?.value);
    const events = [...(await readPrefix(h.client, eventCodec, h.keys.events())).items.values()].map(
      (e) => e.value as EventRecord,
    );
    assert.ok(events.some((e) => e.kind === 'switchover-requested' && e.message.includes('to replica 2 on node-3')));
  });
});
