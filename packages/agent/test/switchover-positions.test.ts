import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import {
  type Etcd3,
  type Keyspace,
  nodeCodec,
  PrefixMirror,
  type ReplicaStatus,
  type SwitchoverRecord,
  statusCodec,
  waitFor,
} from '@service-foundry/core';
import { silentLogger } from '@service-foundry/test-support';
import { FailoverWatch, promptForMs } from '../src/failover-watch.js';
import { SwitchoverWatch, urgentForMs } from '../src/switchover-watch.js';
import { replicationSuite } from './replication-harness.js';

function switchover(
  instanceId: string,
  phase: SwitchoverRecord['phase'],
  node: string,
  at = new Date(),
): SwitchoverRecord {
  const iso = at.toISOString();
  return {
    instanceId,
    from: { ordinal: 0, node: 'elsewhere' },
    fromEpoch: 7,
    to: { ordinal: 1, node },
    phase,
    message: phase,
    requestedBy: 'test',
    requestedAt: iso,
    updatedAt: iso,
    ...(phase === 'requested' ? {} : { stoppingAt: iso }),
  };
}

async function putSwitchover(client: Etcd3, keys: Keyspace, record: SwitchoverRecord): Promise<void> {
  await client.put(keys.switchover(record.instanceId)).value(JSON.stringify(record)).exec();
}

/** Every status the agent writes for one replica, as etcd delivers them. */
async function statusWrites(client: Etcd3, keys: Keyspace, instanceId: string, ordinal: number) {
  const writes: Array<{ status: ReplicaStatus; seenAt: number }> = [];
  const mirror = new PrefixMirror(client, statusCodec, keys.status(instanceId, ordinal), silentLogger());
  mirror.on('change', (changes) => {
    for (const change of changes) if (change.current) writes.push({ status: change.current.value, seenAt: Date.now() });
  });
  await mirror.start();
  return { writes, close: () => mirror.close() };
}

/**
 * Once readings in flight (up to two, each a docker exec) have landed — none for 500 ms —
 * no reading begun in a 1.5 s window is written: the agent is back at the normal pace. A
 * reading begun before the agent saw the change may land late on a loaded machine; one
 * *begun* in the window and written would mean a pressing pace still.
 */
async function assertNormalPace(writes: Array<{ status: ReplicaStatus }>, message: string): Promise<void> {
  let lastCount = writes.length;
  let quietSince = Date.now();
  await waitFor(
    () => {
      if (writes.length !== lastCount) {
        lastCount = writes.length;
        quietSince = Date.now();
      }
      return Date.now() - quietSince >= 500;
    },
    { description: 'readings in flight landed', timeoutMs: 10_000, intervalMs: 50 },
  );
  const quietFrom = writes.length;
  const windowStart = Date.now();
  await delay(1500); // a measurement window
  const begunInWindow = writes
    .slice(quietFrom)
    .map((w) => w.status.positionAt ?? '')
    .filter((at) => Date.parse(at) >= windowStart);
  assert.deepEqual(begunInWindow, [], message);
}

/** A primary record for `instanceId` naming `node` (ordinal 0). */
async function putPrimary(client: Etcd3, keys: Keyspace, instanceId: string, node: string): Promise<void> {
  const record = { instanceId, ordinal: 0, node, host: '10.1.2.3', port: 5432, electedAt: new Date().toISOString() };
  await client.put(keys.primary(instanceId)).value(JSON.stringify(record)).exec();
}

describe('positions a switchover or a failover waits for', () => {
  const suite = replicationSuite();

  test('while a switchover is stopping, the other replicas are read at once, then every 50 ms, and every reading is written', async (t) => {
    // At the normal pace an unchanged position would be read every 10 s and written once a minute.
    const h = await suite.start(t, {
      positionIntervalMs: 10_000,
      positionRefreshMs: 60_000,
      urgentPositionIntervalMs: 50,
    });
    await h.assign(1, { role: 'replica', epoch: 7, upstream: { host: '10.1.2.3', port: 5432 } });
    await h.status(1, 'running replica', (s) => s.state === 'running');
    const seen = await statusWrites(suite.client, h.keys, h.instanceId, 1);
    t.after(seen.close);

    const stoppingAt = Date.now();
    await putSwitchover(suite.client, h.keys, switchover(h.instanceId, 'stopping', h.node));
    // At the normal pace the next reading is 10 s away and its write a minute away; the
    // deadlines below leave room for a loaded machine (a docker exec can take a second)
    // and still tell the urgent pace from the normal one.
    const first = await h.status(
      1,
      'a reading begun after the switchover began stopping',
      (s) => s.positionAt !== undefined && Date.parse(s.positionAt) >= stoppingAt,
      5000,
    );
    assert.equal(first.position, '0');
    const countFrom = seen.writes.length;
    await waitFor(() => seen.writes.length - countFrom >= 3, {
      description: 'an unchanged position written at least 3 times in 5 s',
      timeoutMs: 5000,
      intervalMs: 20,
    });
    const urgent = seen.writes.slice(countFrom);
    const readings = urgent.map((w) => Date.parse(w.status.positionAt ?? ''));
    for (let i = 0; i < urgent.length; i++) {
      const write = urgent[i] as (typeof urgent)[number];
      // positionAt is when the reading began: never after etcd delivered it.
      assert.ok((readings[i] as number) <= write.seenAt, 'positionAt is not later than the write');
      if (i > 0) assert.ok((readings[i] as number) > (readings[i - 1] as number), 'each write is a new reading');
    }

    // Promoting: the positions have done their part; back to the normal pace.
    await putSwitchover(suite.client, h.keys, switchover(h.instanceId, 'promoting', h.node));
    await assertNormalPace(seen.writes, 'no write of an unchanged position once the switchover moved on');
  });

  test('the watch names the replicas whose positions are urgent: the target while requested, all but the old primary while stopping, not after 30 s, not in other phases', async (t) => {
    const keys = (await suite.start(t)).keys;
    const watch = new SwitchoverWatch(suite.client, keys, silentLogger());
    let pokes = 0;
    await watch.start(() => pokes++);
    t.after(() => watch.stop());
    assert.equal(watch.anyUrgent(), false);

    await putSwitchover(suite.client, keys, switchover('inst-a', 'requested', 'n1'));
    await waitFor(() => pokes >= 1, { description: 'a poke for inst-a', timeoutMs: 5000, intervalMs: 20 });
    assert.equal(watch.urgent('inst-a', 1), true, 'requested: the target, whose report the controller waits for');
    assert.equal(watch.urgent('inst-a', 2), false, 'requested: not the other replicas');
    assert.equal(watch.urgent('inst-a', 0), false, 'requested: not the primary');
    await putSwitchover(suite.client, keys, switchover('inst-b', 'stopping', 'n1'));
    await waitFor(() => pokes >= 2, { description: 'a poke for inst-b', timeoutMs: 5000, intervalMs: 20 });
    assert.equal(watch.urgent('inst-b', 1), true, 'the target');
    assert.equal(watch.urgent('inst-b', 2), true, 'another replica');
    assert.equal(watch.urgent('inst-b', 0), false, 'the old primary');
    assert.equal(watch.anyUrgent(), true);
    assert.equal(watch.urgent('inst-b', 1, Date.now() + urgentForMs + 1), false, 'a switchover stuck for 30 s');
    assert.equal(watch.urgent('inst-a', 1, Date.now() + urgentForMs + 1), false, 'a request stuck for 30 s');
    assert.equal(watch.anyUrgent(Date.now() + urgentForMs + 1), false);

    await putSwitchover(suite.client, keys, switchover('inst-a', 'stopping', 'n1'));
    await waitFor(() => pokes >= 3, { description: 'a poke for inst-a stopping', timeoutMs: 5000, intervalMs: 20 });
    assert.equal(watch.urgent('inst-a', 2), true, 'stopping: every replica but the old primary');
    await putSwitchover(suite.client, keys, switchover('inst-a', 'failed', 'n1'));
    await putSwitchover(suite.client, keys, switchover('inst-b', 'promoting', 'n1'));
    await putSwitchover(suite.client, keys, switchover('inst-c', 'stopping', 'n1'));
    await waitFor(() => pokes >= 4, { description: 'a poke for inst-c', timeoutMs: 5000, intervalMs: 20 });
    assert.equal(watch.urgent('inst-a', 1), false, 'failed');
    assert.equal(watch.urgent('inst-b', 1), false, 'promoting');
    assert.equal(watch.urgent('inst-c', 1), true);
    await putSwitchover(suite.client, keys, switchover('inst-c', 'failed', 'n1'));
    await waitFor(() => !watch.anyUrgent(), { description: 'inst-c failed', timeoutMs: 5000, intervalMs: 20 });
    assert.equal(pokes, 4, 'leaving requested or stopping pokes nobody');
  });
  test("while stopping, the old primary's status turning `stopped` pokes at once; a running one does not, nor once the switchover moved on", async (t) => {
    const keys = (await suite.start(t)).keys;
    const watch = new SwitchoverWatch(suite.client, keys, silentLogger());
    let pokes = 0;
    await watch.start(() => pokes++);
    t.after(() => watch.stop());
    const putOldPrimary = (state: ReplicaStatus['state']) => {
      const status: ReplicaStatus = {
        instanceId: 'inst-s',
        ordinal: 0,
        node: 'elsewhere',
        state,
        message: state,
        updatedAt: new Date().toISOString(),
      };
      return suite.client.put(keys.status('inst-s', 0)).value(JSON.stringify(status)).exec();
    };
    await putSwitchover(suite.client, keys, switchover('inst-s', 'stopping', 'n1'));
    await waitFor(() => pokes === 1, { description: 'the poke for stopping', timeoutMs: 5000, intervalMs: 20 });
    // The watch of the status is set up after the phase is seen: a `stopped` written a
    // little later must still be noticed (the controller's stop takes longer than that).
    // Look before writing again, and write seldom: each `stopped` the watch sees pokes, so a
    // second write made while the first one's poke was still on its way would poke once more
    // after the count below (seen in CI under load, with a write every 100 ms).
    await waitFor(
      async () => {
        if (pokes >= 2) return true;
        await putOldPrimary('stopped');
        return false;
      },
      { description: 'a poke for the stopped old primary', timeoutMs: 5000, intervalMs: 500 },
    );
    const afterStopped = pokes;
    await putOldPrimary('running');
    await putSwitchover(suite.client, keys, switchover('inst-s', 'promoting', 'n1'));
    await waitFor(() => !watch.anyUrgent(), { description: 'promoting', timeoutMs: 5000, intervalMs: 20 });
    await putOldPrimary('stopped');
    // A later write of another key settles the order: etcd delivers watch events in order.
    await putSwitchover(suite.client, keys, switchover('inst-t', 'stopping', 'n1'));
    await waitFor(() => pokes === afterStopped + 1, { description: 'the poke for inst-t', timeoutMs: 5000 });
    assert.equal(pokes, afterStopped + 1, 'neither a running status nor a stop after the phase poked');
  });

  test("while a primary's node has no registration, its replicas are read every 250 ms and every reading is written; back to the normal pace once it is back", async (t) => {
    const h = await suite.start(t, {
      positionIntervalMs: 10_000,
      positionRefreshMs: 60_000,
      promptPositionIntervalMs: 250,
    });
    await h.assign(1, { role: 'replica', epoch: 7, upstream: { host: '10.1.2.3', port: 5432 } });
    await h.status(1, 'running replica', (s) => s.state === 'running');
    const seen = await statusWrites(suite.client, h.keys, h.instanceId, 1);
    t.after(seen.close);

    // The primary's node lost its lease: no `nodes/` key for it.
    const lostAt = Date.now();
    await putPrimary(suite.client, h.keys, h.instanceId, 'node-gone');
    await h.status(
      1,
      'a reading begun after the primary lost its node',
      (s) => s.positionAt !== undefined && Date.parse(s.positionAt) >= lostAt,
      5000,
    );
    const countFrom = seen.writes.length;
    await waitFor(() => seen.writes.length - countFrom >= 4, {
      description: 'an unchanged position written at least 4 times in 5 s (the normal pace writes it once a minute)',
      timeoutMs: 5000,
      intervalMs: 20,
    });
    const readings = seen.writes.slice(countFrom).map((w) => Date.parse(w.status.positionAt ?? ''));
    for (let i = 1; i < readings.length; i++) {
      const gap = (readings[i] as number) - (readings[i - 1] as number);
      assert.ok(gap >= 240, `readings do not overlap and keep the prompt pace (${gap} ms apart)`);
    }

    // The primary is on a registered node again (here: this agent's own): the normal pace.
    await putPrimary(suite.client, h.keys, h.instanceId, h.node);
    await assertNormalPace(seen.writes, 'no write of an unchanged position at the normal pace');
  });

  test('the failover watch names the replicas of a primary whose node has no registration: not the primary itself, not after 90 s', async (t) => {
    const h = await suite.start(t);
    const nodes = new PrefixMirror(suite.client, nodeCodec, h.keys.nodes(), silentLogger());
    await nodes.start();
    const watch = new FailoverWatch(suite.client, h.keys, silentLogger(), nodes);
    let pokes = 0;
    await watch.start(() => pokes++);
    t.after(async () => {
      await watch.stop();
      await nodes.close();
    });
    await putPrimary(suite.client, h.keys, 'inst-a', h.node);
    await putPrimary(suite.client, h.keys, 'inst-b', 'node-gone');
    await waitFor(() => pokes >= 1, { description: 'a poke for inst-b', timeoutMs: 5000, intervalMs: 20 });
    assert.equal(watch.prompt('inst-a', 1), false, "the primary's node is registered");
    assert.equal(watch.prompt('inst-b', 1), true);
    assert.equal(watch.prompt('inst-b', 0), false, 'the primary itself');
    assert.equal(watch.prompt('inst-c', 1), false, 'no primary');
    assert.equal(watch.prompt('inst-b', 1, Date.now() + promptForMs + 1), false, 'a node gone for 90 s');
    assert.equal(watch.anyPrompt(Date.now() + promptForMs + 1), false);
    await putPrimary(suite.client, h.keys, 'inst-b', h.node);
    await waitFor(() => !watch.anyPrompt(), {
      description: 'inst-b on a registered node',
      timeoutMs: 5000,
      intervalMs: 20,
    });
    assert.equal(pokes, 1);
  });
});
