import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  createMetricsRegistry,
  fenceCheckCodec,
  parseMetricsText,
  readRecord,
  sampleValue,
  waitFor,
} from '@service-foundry/core';
import { Fencing } from '@service-foundry/fencing';
import { secretBox, silentLogger, startTestEtcd, suiteTempDir, type TestEtcd } from '@service-foundry/test-support';
import { FenceDeviceChecks } from '../src/fence-device-checks.js';

/**
 * The controller's periodic fence device checks, with Debian's real `fence_dummy` (its
 * power state is a file) as the device, on a real etcd.
 */
describe('fence device health checks', () => {
  const dir = suiteTempDir('sf-fence-checks');
  let etcd: TestEtcd;
  let fencing: Fencing;
  let checks: FenceDeviceChecks;
  const registry = createMetricsRegistry('scheduler');
  const log = silentLogger();

  const dummy = (statusFile: string) => ({ agent: 'fence_dummy', options: { status_file: statusFile }, retries: 0 });
  const record = (node: string) => readRecord(etcd.client, fenceCheckCodec, etcd.keys.fenceCheck(node));

  before(async () => {
    etcd = await startTestEtcd();
    fencing = new Fencing(etcd.client, etcd.keys, { recordEvents: false }, { log, secrets: secretBox });
    const on = join(dir.path, 'n-ok.power');
    // fence_dummy compares the whole file: no trailing newline.
    await writeFile(on, 'on');
    await fencing.store.setDevices('n-ok', { levels: [{ devices: [dummy(on)] }] }, 'ops');
    // A state fence_dummy cannot read: `status` fails ("Unable to obtain correct plug status").
    const garbled = join(dir.path, 'n-bad.power');
    await writeFile(garbled, 'garbled');
    await fencing.store.setDevices('n-bad', { levels: [{ devices: [dummy(garbled)] }] }, 'ops');
    checks = new FenceDeviceChecks({
      client: etcd.client,
      keys: etcd.keys,
      fencing,
      nodes: () => ['n-ok', 'n-bad', 'n-none'],
      // Long: the second check below can only come from the devices' change.
      intervalMs: 3_600_000,
      log,
      registry,
    });
    await checks.start();
  });
  after(async () => {
    await checks?.stop();
    await etcd?.stop();
  });

  it('records each device’s status answer per node, and none for a node without devices', async () => {
    const ok = await waitFor(() => record('n-ok'), { description: 'n-ok checked', timeoutMs: 20_000 });
    assert.equal(ok.value.devices.length, 1);
    assert.deepEqual(
      { ...ok.value.devices[0], durationMs: 0 },
      { level: 1, device: 'fence_dummy', agent: 'fence_dummy', ok: true, power: 'on', reason: '', durationMs: 0 },
    );
    const bad = await waitFor(() => record('n-bad'), { description: 'n-bad checked', timeoutMs: 20_000 });
    assert.equal(bad.value.devices[0]?.ok, false);
    assert.notEqual(bad.value.devices[0]?.reason, '');
    assert.equal(await record('n-none'), undefined);

    const samples = parseMetricsText(await registry.metrics());
    assert.equal(sampleValue(samples, 'sf_controller_fence_device_up', { node: 'n-ok', level: '1' }), 1);
    assert.equal(sampleValue(samples, 'sf_controller_fence_device_up', { node: 'n-bad', level: '1' }), 0);
  });

  it('checks a node again as soon as its devices change', async () => {
    const before = (await record('n-bad'))?.value.checkedAt;
    const fixed = join(dir.path, 'n-bad-fixed.power');
    await writeFile(fixed, 'off');
    await fencing.store.setDevices('n-bad', { levels: [{ devices: [dummy(fixed)] }] }, 'ops');
    const again = await waitFor(
      async () => {
        const now = await record('n-bad');
        return now && now.value.checkedAt !== before ? now : undefined;
      },
      { description: 'n-bad checked again', timeoutMs: 20_000 },
    );
    assert.equal(again.value.devices[0]?.ok, true, 'a device that answers OFF works');
    assert.equal(again.value.devices[0]?.power, 'off');
  });
});
