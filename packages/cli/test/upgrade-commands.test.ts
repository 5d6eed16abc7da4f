import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type InstanceRecord, instanceCodec, json, readRecord, waitFor } from '@service-foundry/core';
import { uniqueId, type WatchedProcess } from '@service-foundry/test-support';
import { operatorLogin, postgresServiceId, smallPlanId } from '@service-foundry/test-support/broker-calls';
import { type CliHarness, startCliHarness } from './helpers.js';

const oldImage = 'service-foundry/postgres:15-bookworm-r6';

/**
 * `sf upgrade-service` and `sf upgrade-all` against a real broker and etcd. The test plays
 * the controller: it ends each upgrade operation the CLI starts, as succeeded or failed.
 */
describe('cli: sf upgrade-service, sf upgrade-all', () => {
  let cli: CliHarness;

  before(async () => {
    cli = await startCliHarness();
  });
  after(async () => {
    await cli?.close();
  });

  const exited = async (run: WatchedProcess) => {
    const { code } = await run.exited;
    return { code, out: run.stdout(), err: run.stderr() };
  };
  const readInstance = async (id: string) =>
    (await readRecord(cli.h.client, instanceCodec, cli.h.keys.instance(id)))?.value as InstanceRecord;
  const write = (record: InstanceRecord) => cli.h.client.put(cli.h.keys.instance(record.id)).value(json(record)).exec();

  /** A ready instance named `name` (operators' scope) whose record runs an older version and image. */
  async function olderInstance(name: string): Promise<string> {
    const id = uniqueId('pg');
    const res = await cli.h.call('PUT', `/v2/service_instances/${id}?accepts_incomplete=true`, {
      auth: operatorLogin,
      body: { service_id: postgresServiceId, plan_id: smallPlanId, context: { instance_name: name } },
    });
    assert.equal(res.status, 202, res.text);
    const record = await readInstance(id);
    await write({
      ...record,
      phase: 'ready',
      message: 'primary on node-1',
      maintenanceVersion: '6.0.0',
      image: oldImage,
      operation: { ...record.operation, state: 'succeeded' },
    });
    return id;
  }

  /** What the controller does: ends the upgrade once it is under way. */
  async function finishUpgrade(id: string, state: 'succeeded' | 'failed', description: string): Promise<void> {
    const running = await waitFor(
      async () => {
        const record = await readInstance(id);
        return record.operation.type === 'update' && record.operation.state === 'in progress' ? record : undefined;
      },
      { description: `the upgrade of ${id} to start`, timeoutMs: 15_000, intervalMs: 20 },
    );
    await write({
      ...running,
      operation: { ...running.operation, state, description },
      ...(state === 'failed' ? { message: description } : {}),
    });
  }

  it('refuses bad --canaries and --max-in-flight before anything changes (exit 2)', async () => {
    const id = await olderInstance(uniqueId('args'));
    const before = await cli.h.dump();
    for (const args of [
      ['--canaries', '0'],
      ['--canaries=-1'],
      ['--canaries', 'two'],
      ['--canaries', '1e1'],
      ['--max-in-flight', '0'],
      ['--max-in-flight', '1.5'],
      ['--max-in-flight', '0x10'],
      ['--max-in-flight', '101'],
      ['extra'],
      ['--canary', '1'],
    ]) {
      const { code, err } = await exited(cli.sf('upgrade-all', ...args));
      assert.equal(code, 2, `${args.join(' ')}: ${err}`);
      assert.match(err, /canaries|max-in-flight|expected no arguments|Unknown option/, err);
    }
    assert.equal(await cli.h.dump(), before, 'nothing changed');
    assert.equal((await readInstance(id)).image, oldImage);
    await cli.h.deleteLikeController(id); // so that it is no candidate of the tests below
  });

  it('upgrade-service says what runs, what it moves to and the interruption, then follows it to the end', async () => {
    const name = uniqueId('one');
    const id = await olderInstance(name);
    const run = cli.sf('upgrade-service', name);
    await finishUpgrade(id, 'succeeded', 'every replica runs the new image');
    const { code, out } = await exited(run);
    assert.equal(code, 0, out);
    assert.match(out, /runs now: {2}maintenance version 6\.0\.0, image service-foundry\/postgres:15-bookworm-r6/);
    assert.match(out, /moves to: {2}maintenance version \d+\.\d+\.\d+, image /);
    assert.match(out, /expect: {4}a restart: the instance is unavailable/);
    assert.match(out, /^OK: /m);
    assert.ok(out.indexOf('expect:') < out.indexOf('OK:'));

    const again = await exited(cli.sf('upgrade-service', name));
    assert.equal(again.code, 0);
    assert.match(again.out, /^Nothing to upgrade: /);

    const failing = uniqueId('fails');
    const failingId = await olderInstance(failing);
    const failed = cli.sf('upgrade-service', failing);
    await finishUpgrade(failingId, 'failed', 'replica 0 did not start on the new image');
    const result = await exited(failed);
    assert.equal(result.code, 1, 'a failed upgrade is a failed command');
  });

  it('upgrade-all stops at the first failed canary, saying which and why; a re-run resumes', async () => {
    // Instances of the other tests are upgraded or failed by now; only these two qualify.
    const canary = uniqueId('canary');
    const canaryId = await olderInstance(canary);
    const next = uniqueId('next');
    const nextId = await olderInstance(next);
    const run = cli.sf('upgrade-all', '--canaries', '1', '--max-in-flight', '2');
    await finishUpgrade(canaryId, 'failed', 'replica 0 did not start on the new image');
    const first = await exited(run);
    assert.equal(first.code, 1, first.out);
    assert.match(first.out, new RegExp(`canary ${canary} failed: replica 0 did not start on the new image`));
    assert.equal((await readInstance(nextId)).image, oldImage, 'nothing else was started');

    // The operator fixes the cause; the failed canary's record holds the target, so the re-run starts with the rest.
    const rerun = cli.sf('upgrade-all');
    await finishUpgrade(nextId, 'succeeded', 'every replica runs the new image');
    const second = await exited(rerun);
    assert.equal(second.code, 0, second.out);
    assert.match(second.out, /OK: 1 of 1 instance\(s\) upgraded/);

    const none = await exited(cli.sf('upgrade-all'));
    assert.equal(none.code, 0);
    assert.match(none.out, /^Nothing to upgrade/);
  });
});
