import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { waitFor } from '@service-foundry/core';
import { putSecret } from './helpers.js';
import { replicationSuite, testSecret } from './replication-harness.js';
import { shellIn } from './replication-helpers.js';

/**
 * password-rotation.ts with real containers and the busybox recipe, whose `rotate` records
 * the step and the passwords its files held: each running replica takes each step of a
 * rotation once, with the new files put in first, reports it in its status, retries a
 * failed step, and takes the step again once promoted.
 */
describe('password rotation inside running replicas', () => {
  const suite = replicationSuite();
  const rotated = { ...testSecret, adminPassword: 'admin-new-pw', replicationPassword: 'replication-new-pw' };
  const previous = { adminPassword: testSecret.adminPassword, replicationPassword: 'replication-secret-pw' };

  test('each step once per replica, files first, reported in the status; retried after a failure; again after a promotion', async (t) => {
    const h = await suite.start(t);
    const upstream = { host: '10.1.2.3', port: 5432 };
    await h.assign(1, { role: 'replica', epoch: 3, upstream });
    await h.status(1, 'running replica', (s) => s.state === 'running' && s.role === 'replica');
    const rotations = async () => (await h.actions(1)).filter((a) => a.startsWith('rotate'));
    assert.deepEqual(await rotations(), [], 'never rotated: no step runs');

    await shellIn(h.container(1), 'echo injected > /data/fail-rotate');
    await putSecret(suite.client, h.keys, h.instanceId, { ...rotated, generation: 1, previous });
    const failed = await h.events('passwords-rotation-failed');
    assert.match(
      failed[0]?.message ?? '',
      /accept-previous \(generation 1\) failed: .*exited with code 3: rotate refused: injected/,
    );
    assert.ok(!failed[0]?.message.includes('admin-new-pw'), 'no password in the event');
    const waiting = await h.status(1, 'still running, nothing reported', (s) => s.state === 'running');
    assert.equal(waiting.passwords, undefined);

    await shellIn(h.container(1), 'rm /data/fail-rotate');
    const accepted = await h.status(1, 'accept-previous reported', (s) => s.passwords?.phase === 'accept-previous');
    assert.deepEqual(accepted.passwords, { generation: 1, phase: 'accept-previous' });
    assert.deepEqual(await rotations(), [
      `rotate accept-previous as replica: admin admin-new-pw, previous ${testSecret.adminPassword}`,
    ]);
    const files = 'cat /run/sf-secrets/replication-password; echo; cat /run/sf-secrets/replication-password.previous';
    assert.equal(await shellIn(h.container(1), files), `replication-new-pw\n${previous.replicationPassword}`);

    await putSecret(suite.client, h.keys, h.instanceId, { ...rotated, generation: 1 });
    await h.status(1, 'new-only reported', (s) => s.passwords?.phase === 'new-only');
    // The previous-password file is empty again.
    assert.equal((await rotations()).at(-1), 'rotate new-only as replica: admin admin-new-pw, previous');

    // Promoted: the step runs again as a primary (only a primary sets role passwords).
    const epoch = await h.putPrimary(1);
    await h.assign(1, { role: 'primary', epoch, upstream });
    await waitFor(async () => (await rotations()).at(-1)?.includes('as primary'), {
      description: 'the new-only step again as primary',
      timeoutMs: 20_000,
    });
    const primary = await h.status(
      1,
      'primary with its step',
      (s) => s.role === 'primary' && s.passwords !== undefined,
    );
    assert.deepEqual(primary.passwords, { generation: 1, phase: 'new-only' });
    assert.equal((await rotations()).length, 3, 'each step once per role: no repeats on later passes');
  });
});
