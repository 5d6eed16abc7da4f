import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { eventCodec, readPrefix } from '@service-foundry/core';
import { secretBox, silentLogger, startTestEtcd, suiteTempDir, type TestEtcd } from '@service-foundry/test-support';
import { Fencing, runFenceLevels } from '../src/index.js';
import {
  device,
  dummyDevice,
  fastOptions,
  powerFile,
  readPower,
  runContext,
  testAgentDirs,
  testAgents,
  writeAgent,
} from './helpers.js';

describe('fence levels: tried in order, a level needs all its devices', () => {
  const dir = suiteTempDir('sf-fencing-levels');
  let etcd: TestEtcd;
  const log = silentLogger();

  before(async () => {
    etcd = await startTestEtcd();
  });
  after(async () => {
    await etcd.stop();
  });

  /** Level 1 fails, level 2 has one good and one bad device, level 3 has two good ones. */
  async function threeLevels() {
    const broken = await writeAgent(dir.path, 'broken', 'echo "BMC unreachable" >&2\nexit 1');
    const files = {
      l2: await powerFile(dir.path, 'l2', 'on'),
      l3a: await powerFile(dir.path, 'l3a', 'on'),
      l3b: await powerFile(dir.path, 'l3b', 'on'),
    };
    const levels = [
      { devices: [device({ name: 'ipmi', agent: broken, retries: 0 })] },
      {
        devices: [dummyDevice(files.l2, { name: 'pdu-a' }), device({ name: 'pdu-b', agent: broken, retries: 0 })],
      },
      { devices: [dummyDevice(files.l3a, { name: 'psu-1' }), dummyDevice(files.l3b, { name: 'psu-2' })] },
    ];
    return { levels, files };
  }

  it('falls through failing levels to the first that succeeds', async () => {
    const { levels, files } = await threeLevels();
    const result = await runFenceLevels(levels, runContext(log, 'node-1', testAgents(dir.path)));
    assert.equal(result.ok, true);
    assert.equal(result.level, 3);
    assert.deepEqual(
      result.levels.map((l) => [l.level, l.ok, l.devices.map((d) => [d.device, d.ok])]),
      [
        [1, false, [['ipmi', false]]],
        [
          2,
          false,
          [
            ['pdu-a', true],
            ['pdu-b', false],
          ],
        ],
        [
          3,
          true,
          [
            ['psu-1', true],
            ['psu-2', true],
          ],
        ],
      ],
    );
    assert.equal(result.levels[0]?.devices[0]?.reason, 'off failed: exit code 1: BMC unreachable');
    assert.equal(await readPower(files.l3a), 'off');
    assert.equal(await readPower(files.l3b), 'off');
  });

  it('fails with every device’s reason when no level succeeds', async () => {
    const broken = await writeAgent(dir.path, 'broken2', 'exit 3');
    const result = await runFenceLevels(
      [
        { devices: [device({ name: 'a', agent: broken, retries: 0 })] },
        { devices: [device({ name: 'b', agent: broken, retries: 0 })] },
      ],
      runContext(log, 'node-1', testAgents(dir.path)),
    );
    assert.equal(result.ok, false);
    assert.equal(result.level, undefined);
    assert.equal(result.reason, 'level 1: a: off failed: exit code 3 | level 2: b: off failed: exit code 3');
  });

  it('records the fenced level and every device’s outcome in etcd', async () => {
    const { levels } = await threeLevels();
    const fencing = new Fencing(
      etcd.client,
      etcd.keys,
      { ...fastOptions, recordEvents: true, agentDirs: testAgentDirs(dir.path) },
      { log, secrets: secretBox },
    );
    await fencing.store.setDevices('node-3', { levels }, 'ops-alice');
    const result = await fencing.fence('node-3', { by: 'controller', reason: 'lease of node-3 expired' });
    assert.equal(result.state, 'fenced');
    assert.equal(result.level, 3);
    assert.equal(result.ranDevices, true);

    const record = await fencing.store.record('node-3');
    assert.equal(record?.value.state, 'fenced');
    assert.equal(record?.value.level, 3);
    assert.equal(record?.value.by, 'controller');
    assert.equal(record?.value.reason, 'lease of node-3 expired');

    const [entry, ...rest] = await fencing.store.history(10, 'node-3');
    assert.equal(rest.length, 0);
    assert.ok(entry);
    assert.equal(entry.action, 'fence');
    assert.equal(entry.result, 'fenced');
    assert.equal(entry.level, 3);
    assert.equal(entry.by, 'controller');
    assert.equal(entry.recorded, true);
    assert.ok(entry.durationMs >= 0);
    assert.deepEqual(
      entry.levels.flatMap((l) => l.devices.map((d) => [d.level, d.device, d.ok, d.steps.map((s) => s.action)])),
      [
        [1, 'ipmi', false, ['off']],
        [2, 'pdu-a', true, ['off', 'status']],
        [2, 'pdu-b', false, ['off']],
        [3, 'psu-1', true, ['off', 'status']],
        [3, 'psu-2', true, ['off', 'status']],
      ],
    );

    const events = await readPrefix(etcd.client, eventCodec, etcd.keys.events());
    const kinds = [...events.items.values()].filter((e) => e.value.node === 'node-3').map((e) => e.value.kind);
    assert.deepEqual(kinds.sort(), ['node-fenced', 'node-fencing']);
  });
});
