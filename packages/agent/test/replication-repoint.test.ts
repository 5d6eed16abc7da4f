import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { containerState } from '@service-foundry/test-support/docker';
import { replicationSuite } from './replication-harness.js';
import { volumePath } from './replication-helpers.js';

/**
 * Rule 4g (src/replica-repoint.ts) with real containers: a replica that is not ready yet
 * because its upstream is gone takes the new one without waiting out its readiness
 * timeout (20 s in the test catalog; each wait below is shorter).
 */
describe('replicated services: a replica not ready yet whose upstream moved', () => {
  const suite = replicationSuite();
  const { start } = suite;

  test('a replica waiting for its first sync from a dead upstream follows the new one in place', async (t) => {
    const h = await start(t);
    await h.assign(1, { role: 'replica', epoch: 3, upstream: { host: '198.51.100.7', port: 6379 } });
    const stuck = await h.status(1, 'starting, never ready', (s) => s.state === 'starting');
    await h.assign(1, { role: 'replica', epoch: 4, upstream: { host: '10.1.3.4', port: 6379 } });
    const ready = await h.status(
      1,
      'ready behind the new upstream',
      (s) => s.state === 'running' && s.message === 'ready' && s.epoch === 4,
      10_000,
    );
    assert.equal(ready.containerId, stuck.containerId, 're-pointed in place, not made again');
    assert.deepEqual(await h.actions(1), ['clone 198.51.100.7 6379', 'start replica', 'follow 10.1.3.4 6379']);
  });

  test('a clone waiting on a dead upstream is made again from the new one, on the same volume, at every move', async (t) => {
    const h = await start(t);
    await h.assign(1, { role: 'replica', epoch: 3, upstream: { host: '192.0.2.7', port: 5432 } });
    const cloning = await h.status(1, 'starting while the clone waits', (s) => s.state === 'starting');
    const volumeBefore = (await containerState(h.container(1)))?.Mounts.find((m) => m.Destination === volumePath);
    // A second failover while the new clone waits too.
    await h.assign(1, { role: 'replica', epoch: 4, upstream: { host: '192.0.2.8', port: 5432 } });
    const again = await h.status(
      1,
      'made again, waiting on the second upstream',
      (s) => s.state === 'starting' && s.containerId !== cloning.containerId,
      10_000,
    );
    await h.assign(1, { role: 'replica', epoch: 5, upstream: { host: '10.1.3.5', port: 5432 } });
    const ready = await h.status(
      1,
      'ready, cloned from the new upstream',
      (s) => s.state === 'running' && s.message === 'ready' && s.epoch === 5,
      10_000,
    );
    assert.notEqual(ready.containerId, again.containerId, 'a new container');
    const info = await containerState(h.container(1));
    assert.ok(info?.Config.Env.includes('SF_UPSTREAM_HOST=10.1.3.5'), 'made with the new upstream');
    const volumeAfter = info?.Mounts.find((m) => m.Destination === volumePath);
    assert.equal(volumeAfter?.Name, volumeBefore?.Name, 'the same volume');
    // Made on a volume that existed, so what it follows is unknown until `follow` runs once.
    assert.deepEqual(await h.actions(1), [
      'clone waits for 192.0.2.7 5432',
      'clone waits for 192.0.2.8 5432',
      'clone 10.1.3.5 5432',
      'start replica',
      'follow 10.1.3.5 5432',
    ]);
    const messages = (await h.events('replica-recreated')).map((e) => e.message).sort();
    assert.equal(messages.length, 2, messages.join('\n'));
    assert.match(messages[0] ?? '', /made again for upstream 10\.1\.3\.5:5432 instead of 192\.0\.2\.8:5432/);
    assert.match(messages[1] ?? '', /made again for upstream 192\.0\.2\.8:5432 instead of 192\.0\.2\.7:5432/);
    assert.match(messages[0] ?? '', /nothing serves yet \(cloning\)/);
  });
});
