import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ConflictError, json, sealedValue, waitFor } from '@service-foundry/core';
import {
  secretBox,
  silentLogger,
  startTestEtcd,
  suiteTempDir,
  type TestEtcd,
  uniqueId,
} from '@service-foundry/test-support';
import { Fencing, fenceNode, type StoredFenceRecord, unfenceNode } from '../src/index.js';
import { dummyDevice, fastOptions, powerFile, readPower, testAgentDirs, writeAgent } from './helpers.js';

describe('fenceNode / unfenceNode against etcd', () => {
  const dir = suiteTempDir('sf-fencing-service');
  let etcd: TestEtcd;
  let fencing: Fencing;
  /** Fast, with the test's own agents allow-listed. */
  let options: typeof fastOptions;
  const log = silentLogger();

  before(async () => {
    etcd = await startTestEtcd();
    options = { ...fastOptions, agentDirs: testAgentDirs(dir.path) };
    fencing = new Fencing(etcd.client, etcd.keys, options, { log, secrets: secretBox });
  });
  after(async () => {
    await etcd.stop();
  });

  /**
   * A device that counts its runs per action and, while `gate` names a missing file,
   * blocks until the test creates it — so a test can look at the record mid-run.
   */
  async function countingDevice(node: string, gate?: string) {
    const log = join(dir.path, `${node}.runs`);
    await writeFile(log, '');
    const wait = gate ? `while [ ! -f ${gate} ]; do sleep 0.02; done\n` : '';
    const agent = await writeAgent(dir.path, `count-${node}`, `echo "$first" >> ${log}\n${wait}exit 0`);
    const runs = async () => (await readFile(log, 'utf8')).split('\n').filter(Boolean);
    return { device: { agent, retries: 0, confirm: 'exit-code' as const }, runs };
  }

  const setDevices = (node: string, devices: unknown[]) =>
    fencing.store.setDevices(node, { levels: [{ devices }] }, 'ops');
  const state = async (node: string) => (await fencing.store.record(node))?.value;

  it('none → fencing → fenced, and fenced → unfenced with `on` on the fencing level', async () => {
    const node = uniqueId('n');
    const gate = join(dir.path, `${node}.go`);
    const power = await powerFile(dir.path, `${node}.power`, 'on');
    const counting = await countingDevice(node, gate);
    await setDevices(node, [counting.device, dummyDevice(power)]);

    const running = fenceNode(etcd.client, etcd.keys, node, { by: 'controller', reason: 'lease expired' }, options, {
      log,
      secrets: secretBox,
    });
    const during = await waitFor(
      async () => ((await state(node))?.state === 'fencing' ? await state(node) : undefined),
      {
        description: 'the fencing claim',
        timeoutMs: 10_000,
        intervalMs: 20,
      },
    );
    assert.equal(during.by, 'controller');
    assert.ok(during.deadline && Date.parse(during.deadline) > Date.now());
    await writeFile(gate, '');
    const result = await running;
    assert.equal(result.state, 'fenced');
    assert.equal(result.level, 1);
    assert.equal((await state(node))?.state, 'fenced');
    assert.equal(await readPower(power), 'off');

    const unfenced = await unfenceNode(etcd.client, etcd.keys, node, { by: 'ops-bob', reason: 'repaired' }, options, {
      log,
      secrets: secretBox,
    });
    assert.equal(unfenced.state, 'unfenced');
    assert.equal(unfenced.ranDevices, true);
    assert.equal(await readPower(power), 'on');
    assert.deepEqual(await counting.runs(), ['action=off', 'action=on']);
    const after = await state(node);
    assert.equal(after?.state, 'unfenced');
    assert.equal(after?.by, 'ops-bob');

    const history = await fencing.store.history(10, node);
    assert.deepEqual(
      history.map((h) => [h.action, h.result, h.by, h.level]),
      [
        ['unfence', 'unfenced', 'ops-bob', 1],
        ['fence', 'fenced', 'controller', 1],
      ],
    );
  });

  it('two concurrent fenceNode calls run the devices once', async () => {
    const node = uniqueId('n');
    const counting = await countingDevice(node);
    await setDevices(node, [counting.device]);
    const other = new Fencing(etcd.client, etcd.keys, options, { log, secrets: secretBox });
    const [a, b] = await Promise.all([
      fencing.fence(node, { by: 'controller-a', reason: 'lease expired' }),
      other.fence(node, { by: 'controller-b', reason: 'lease expired' }),
    ]);
    assert.equal(a.state, 'fenced');
    assert.equal(b.state, 'fenced');
    assert.deepEqual(await counting.runs(), ['action=off']);
    assert.equal([a, b].filter((r) => r.ranDevices).length, 1);
    const history = await fencing.store.history(10, node);
    assert.equal(history.filter((h) => h.ranDevices).length, 1);
    assert.equal(history.length, 2, 'both requests are audited');
  });

  it('a caller arriving during a fencing attempt waits for it and gets its outcome', async () => {
    const node = uniqueId('n');
    const gate = join(dir.path, `${node}.go`);
    const counting = await countingDevice(node, gate);
    await setDevices(node, [counting.device]);
    const first = fencing.fence(node, { by: 'controller', reason: 'lease expired' });
    await waitFor(async () => (await state(node))?.state === 'fencing', { description: 'claim', intervalMs: 20 });
    const second = fencing.fence(node, { by: 'ops-carol', reason: 'manual' });
    await writeFile(gate, '');
    const [r1, r2] = await Promise.all([first, second]);
    assert.equal(r1.ranDevices, true);
    assert.equal(r2.ranDevices, false);
    assert.equal(r2.state, 'fenced');
    assert.match(r2.history.detail, /^answered by attempt [0-9a-f]+ of controller: fenced$/);
    assert.deepEqual(await counting.runs(), ['action=off']);
  });

  it('fenced + fence: answered at once, nothing runs', async () => {
    const node = uniqueId('n');
    const counting = await countingDevice(node);
    await setDevices(node, [counting.device]);
    await fencing.fence(node, { by: 'controller', reason: 'first' });
    const again = await fencing.fence(node, { by: 'ops-dave', reason: 'make sure' });
    assert.equal(again.state, 'fenced');
    assert.equal(again.ranDevices, false);
    assert.match(again.history.detail, /^already fenced at level 1 by controller at /);
    assert.equal(again.history.result, 'no-op');
    assert.deepEqual(await counting.runs(), ['action=off']);
  });

  it('none + fence without devices → failed; failed + fence → fenced; failed + unfence → released', async () => {
    const node = uniqueId('n');
    const none = await fencing.fence(node, { by: 'controller', reason: 'lease expired' });
    assert.equal(none.state, 'failed');
    assert.equal(none.reason, `no fence devices configured for node ${node}`);
    assert.equal((await state(node))?.state, 'failed');
    assert.equal((await state(node))?.reason, `no fence devices configured for node ${node}`);

    const broken = await writeAgent(dir.path, `broken-${node}`, 'echo "no route to BMC" >&2\nexit 1');
    await setDevices(node, [{ name: 'bmc', agent: broken, retries: 0 }]);
    const failed = await fencing.fence(node, { by: 'controller', reason: 'lease expired' });
    assert.equal(failed.state, 'failed');
    assert.equal(failed.reason, 'level 1: bmc: off failed: exit code 1: no route to BMC');

    const power = await powerFile(dir.path, `${node}.power`, 'on');
    await setDevices(node, [dummyDevice(power)]);
    const retried = await fencing.fence(node, { by: 'controller', reason: 'retry' });
    assert.equal(retried.state, 'fenced');

    // Back to failed, then an operator releases it: nothing runs.
    await setDevices(node, [{ name: 'bmc', agent: broken, retries: 0 }]);
    await fencing.unfence(node, { by: 'ops', reason: 'reset', powerOn: false });
    assert.equal((await fencing.fence(node, { by: 'controller', reason: 'again' })).state, 'failed');
    const released = await fencing.unfence(node, { by: 'ops-erin', reason: 'node inspected, it is down' });
    assert.equal(released.state, 'unfenced');
    assert.equal(released.ranDevices, false);
    assert.equal((await state(node))?.state, 'unfenced');
  });

  it('fenced + unfence whose `on` fails: stays fenced', async () => {
    const node = uniqueId('n');
    const offOnly = await writeAgent(dir.path, `offonly-${node}`, '[ "$first" = "action=off" ] && exit 0\nexit 1');
    await setDevices(node, [{ name: 'pdu', agent: offOnly, retries: 0, confirm: 'exit-code' }]);
    assert.equal((await fencing.fence(node, { by: 'controller', reason: 'x' })).state, 'fenced');
    const result = await fencing.unfence(node, { by: 'ops', reason: 'repaired' });
    assert.equal(result.ok, false);
    assert.equal(result.state, 'fenced');
    assert.equal(result.reason, 'level 1: pdu: on failed: exit code 1');
    assert.equal((await state(node))?.state, 'fenced');
    assert.equal(result.history.result, 'unfence-failed');
  });

  it('unfenced / none + unfence: nothing to do', async () => {
    const node = uniqueId('n');
    const result = await fencing.unfence(node, { by: 'ops', reason: 'just in case' });
    assert.equal(result.state, 'unfenced');
    assert.equal(result.ranDevices, false);
    assert.equal(result.history.result, 'no-op');
    assert.equal(await state(node), undefined);
  });

  it('live fencing + unfence: refused; stale fencing + unfence: released', async () => {
    const node = uniqueId('n');
    const gate = join(dir.path, `${node}.go`);
    const counting = await countingDevice(node, gate);
    await setDevices(node, [counting.device]);
    const running = fencing.fence(node, { by: 'controller', reason: 'x' });
    await waitFor(async () => (await state(node))?.state === 'fencing', { description: 'claim', intervalMs: 20 });
    await assert.rejects(fencing.unfence(node, { by: 'ops', reason: 'too early' }), ConflictError);
    await writeFile(gate, '');
    await running;

    const stale: StoredFenceRecord = {
      node,
      state: 'fencing',
      reason: 'x',
      by: 'dead-controller',
      at: new Date(Date.now() - 120_000).toISOString(),
      attemptId: 'dead',
      deadline: new Date(Date.now() - 60_000).toISOString(),
    };
    await etcd.client.put(etcd.keys.fence(node)).value(json(stale)).exec();
    const released = await fencing.unfence(node, { by: 'ops', reason: 'controller died' });
    assert.equal(released.state, 'unfenced');
    assert.equal(released.ranDevices, false);
  });

  it('stale fencing + fence: taken over; the late runner’s write loses', async () => {
    const node = uniqueId('n');
    const gate = join(dir.path, `${node}.go`);
    const counting = await countingDevice(node, gate);
    await setDevices(node, [counting.device]);
    // A runner that will be "taken over" while its device hangs.
    const slow = fencing.fence(node, { by: 'controller-old', reason: 'x' });
    const claim = await waitFor(
      async () => ((await state(node))?.state === 'fencing' ? await state(node) : undefined),
      {
        description: 'claim',
        intervalMs: 20,
      },
    );
    // Its claim goes stale (as if its deadline had passed) ...
    await etcd.client
      .put(etcd.keys.fence(node))
      .value(json({ ...claim, deadline: new Date(Date.now() - 1).toISOString() }))
      .exec();
    // ... and another controller takes over. The gate opens for both runs.
    await writeFile(gate, '');
    const takeover = await new Fencing(etcd.client, etcd.keys, options, { log, secrets: secretBox }).fence(node, {
      by: 'controller-new',
      reason: 'x',
    });
    const late = await slow;
    assert.equal(takeover.ranDevices, true);
    assert.equal(takeover.history.recorded, true);
    assert.equal(late.history.recorded, false, 'the late runner does not overwrite the take-over');
    const final = await state(node);
    assert.equal(final?.state, 'fenced');
    assert.equal(final?.by, 'controller-new');
    assert.deepEqual(await counting.runs(), ['action=off', 'action=off']);
    const history = await fencing.store.history(10, node);
    assert.deepEqual(history.map((h) => [h.by, h.recorded]).sort(), [
      ['controller-new', true],
      ['controller-old', false],
    ]);
  });

  it('refuses, as a failed device, a device written to etcd without going through validation', async () => {
    const node = uniqueId('n');
    const marker = join(dir.path, `${node}.pwned`);
    const record = {
      node,
      updatedAt: new Date().toISOString(),
      updatedBy: 'someone-with-etcd-access',
      levels: [
        { devices: [{ name: 'shell', agent: 'sh', options: { x: `1; touch ${marker}` }, retries: 0 }] },
        {
          devices: [{ name: 'debug', agent: 'fence_dummy', options: { debug_file: marker }, retries: 0 }],
        },
      ],
    };
    const key = etcd.keys.fenceDevices(node);
    await etcd.client
      .put(key)
      .value(sealedValue(secretBox, key, record))
      .exec();
    const result = await fencing.fence(node, { by: 'controller', reason: 'lease expired' });
    assert.equal(result.state, 'failed');
    assert.equal(
      result.reason,
      'level 1: shell: off failed: fence agent "sh" refused: not a fence agent name: expected fence_ followed by letters, digits or _ (shells, interpreters and other programs are never run) | ' +
        'level 2: debug: off failed: fence agent "fence_dummy" refused: option debug_file: refused (matches debug_file): it makes the agent run a program or write a file it names, or exit without fencing',
    );
    assert.deepEqual(
      result.history.levels.flatMap((l) => l.devices.map((d) => [d.device, d.ok, d.steps.map((s) => s.attempts)])),
      [
        ['shell', false, [0]],
        ['debug', false, [0]],
      ],
      'nothing was run',
    );
    await assert.rejects(readFile(marker), { code: 'ENOENT' });
    // And through the store, the same devices are refused before anything is written.
    await assert.rejects(fencing.store.setDevices(node, { levels: record.levels }, 'ops'), /invalid fence devices/);
  });

  it('rejects bad requests before touching etcd', async () => {
    await assert.rejects(fencing.fence('../x', { by: 'ops', reason: '' }), /not a valid node name/);
    await assert.rejects(fencing.fence('n1', { by: '', reason: '' }), /by must be/);
    await assert.rejects(fencing.fence('n1', { by: 'ops', reason: 'x'.repeat(1001) }), /reason must be/);
  });
});
