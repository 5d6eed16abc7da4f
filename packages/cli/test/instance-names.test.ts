import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { instanceCodec, readRecord } from '@service-foundry/core';
import { uniqueId } from '@service-foundry/test-support';
import type { Harness } from '@service-foundry/test-support/broker-harness';
import { type CliHarness, startCliHarness } from './helpers.js';

/** `sf` names instances the way the operator API resolves them: one resolver, in the broker. */
describe('cli: instance names are resolved by the broker, per space', () => {
  let cli: CliHarness;
  let h: Harness;
  const inSpaceA = uniqueId('pg-a');
  const inSpaceB = uniqueId('pg-b');

  const sf = async (...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> => {
    const run = cli.sf(...args);
    const { code } = await run.exited;
    return { code, stdout: run.stdout(), stderr: run.stderr() };
  };

  const provision = async (id: string, space: string) => {
    const res = await h.provision(id, {
      organization_guid: 'org-1',
      space_guid: space,
      context: { platform: 'cloudfoundry', instance_name: 'orders' },
    });
    assert.equal(res.status, 202, res.text);
  };

  before(async () => {
    cli = await startCliHarness();
    h = cli.h;
    await provision(inSpaceA, 'space-a');
    await provision(inSpaceB, 'space-b');
  });
  after(async () => {
    await cli?.close();
  });

  it('a name held in two spaces is refused with the spaces listed, and nothing is deleted', async () => {
    const shown = await sf('service', 'orders');
    assert.equal(shown.code, 1, shown.stderr);
    assert.match(shown.stderr, /2 instances are named "orders"/);
    assert.match(shown.stderr, /space "space-a" \(id pg-a-/);
    assert.match(shown.stderr, /space "space-b" \(id pg-b-/);
    const deleted = await sf('delete-service', 'orders', '--no-wait');
    assert.equal(deleted.code, 1, deleted.stderr);
    for (const id of [inSpaceA, inSpaceB]) {
      assert.equal((await readRecord(h.client, instanceCodec, h.keys.instance(id)))?.value.phase, 'provisioning');
    }
  });

  it('an id always names one instance', async () => {
    const shown = await sf('service', inSpaceB, '--json');
    assert.equal(shown.code, 0, shown.stderr);
    const detail = JSON.parse(shown.stdout) as { id: string; scope: unknown };
    assert.equal(detail.id, inSpaceB);
    assert.deepEqual(detail.scope, { organization: 'org-1', space: 'space-b' });
  });

  it('sf creates in the operators’ scope, where the name then resolves; the list shows each space', async () => {
    const created = await sf('create-service', 'postgres', 'small', 'orders', '--no-wait');
    assert.equal(created.code, 0, created.stderr);
    const again = await sf('create-service', 'postgres', 'small', 'billing', '--no-wait');
    assert.equal(again.code, 0, again.stderr);
    const billing = await sf('service', 'billing', '--json');
    assert.equal(billing.code, 0, billing.stderr);
    assert.equal((JSON.parse(billing.stdout) as { scope: unknown }).scope, null);
    const missing = await sf('service', 'nope');
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /service instance "nope" not found/);
    const dots = await sf('service', '..');
    assert.equal(dots.code, 2, 'a name URL parsing would read as a path step is refused before any request');
    const listed = await sf('services');
    assert.equal(listed.code, 0, listed.stderr);
    const rows = listed.stdout.split('\n').filter((line) => line.startsWith('orders'));
    assert.deepEqual(rows.map((row) => row.split(/\s+/)[1]).sort(), ['-', 'org-1/space-a', 'org-1/space-b']);
  });
});
