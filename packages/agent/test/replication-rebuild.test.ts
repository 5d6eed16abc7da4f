import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { assignmentCodec, readRecord, waitFor } from '@service-foundry/core';
import { silentLogger } from '@service-foundry/test-support';
import { containerState, removeClusterResources, volumeExists } from '@service-foundry/test-support/docker';
import { startAgent } from '../src/index.js';
import { replicationSuite } from './replication-harness.js';
import { shellIn, volumePath } from './replication-helpers.js';

/** Rule 4e (rebuilds on a fresh volume, old data kept) and adoption by a restarted agent. */
describe('replicated services: rebuilds and adoption', () => {
  const suite = replicationSuite();
  const { start } = suite;

  async function mountedVolume(container: string): Promise<string | undefined> {
    return (await containerState(container))?.Mounts.find((m) => m.Destination === volumePath)?.Name;
  }

  test('rule 4e: a generation bump rebuilds the replica on a new volume and keeps the old one', async (t) => {
    const h = await start(t);
    await h.assign(0, { role: 'replica', epoch: 3, upstream: { host: '10.1.1.1', port: 5432 } });
    const first = await h.status(0, 'running replica', (s) => s.state === 'running' && s.role === 'replica');
    const oldVolume = h.container(0);
    assert.equal(await mountedVolume(h.container(0)), oldVolume, 'generation 0 keeps the name it always had');
    await shellIn(h.container(0), 'echo old data > /data/marker');
    // A connection whose peer forgot it (a node powered off and back) is found dead in ~19 s.
    const keepalive = await shellIn(
      h.container(0),
      'cat /proc/sys/net/ipv4/tcp_keepalive_time /proc/sys/net/ipv4/tcp_keepalive_intvl /proc/sys/net/ipv4/tcp_keepalive_probes',
    );
    assert.deepEqual(keepalive.trim().split('\n'), ['10', '3', '3'], 'TCP keepalive of the replica’s namespace');

    await h.assign(0, { role: 'replica', epoch: 4, upstream: { host: '10.1.1.2', port: 5432 }, generation: 1 });
    const rebuilt = await h.status(
      0,
      'running at generation 1',
      (s) => s.state === 'running' && s.generation === 1 && s.containerId !== first.containerId,
    );
    assert.equal(rebuilt.role, 'replica');
    assert.equal(rebuilt.epoch, 4);
    const newVolume = `${h.container(0)}-g1`;
    assert.equal(await mountedVolume(h.container(0)), newVolume);
    assert.equal(await volumeExists(oldVolume), true, 'the old volume is kept');
    assert.deepEqual(await h.actions(0), ['clone 10.1.1.2 5432', 'start replica'], 'cloned on an empty volume');
    assert.equal((await containerState(h.container(0)))?.Config.Labels['sf.generation'], '1');
    const events = await h.events('replica-volume-superseded');
    assert.match(events[0]?.message ?? '', new RegExp(`volume ${oldVolume} is kept, superseded by ${newVolume}`));
    assert.match(events[0]?.message ?? '', /generation 0 → 1/);
  });

  test('rule 4e: a demoted primary is killed and rebuilt as a replica; removal leaves superseded volumes', async (t) => {
    const h = await start(t);
    await h.assign(0, { role: 'primary', epoch: 0 });
    const primary = await h.status(0, 'running primary', (s) => s.state === 'running' && s.role === 'primary');
    // A failover elsewhere: the primary key now names replica 2 on another node.
    const epoch = await h.putPrimary(2, 'some-other-node');
    await h.assign(0, { role: 'replica', epoch, upstream: { host: '10.9.9.9', port: 5432 } });
    const demoted = await h.status(
      0,
      'rebuilt as a replica',
      (s) => s.state === 'running' && s.role === 'replica' && s.containerId !== primary.containerId,
    );
    assert.equal(demoted.epoch, epoch);
    assert.equal(demoted.generation, 0);
    assert.equal(await containerState(primary.containerId ?? ''), undefined, 'the old primary container is gone');
    const newVolume = `${h.container(0)}-g0-e${epoch}`;
    assert.equal(await mountedVolume(h.container(0)), newVolume);
    assert.equal(await volumeExists(h.container(0)), true, "the old primary's volume is kept");
    assert.deepEqual(await h.actions(0), ['clone 10.9.9.9 5432', 'start replica']);
    const [event] = await h.events('replica-volume-superseded');
    assert.match(event?.message ?? '', /demoted/);

    // Removal deletes the volume in use only; the superseded one stays for an operator.
    await h.assign(0, { role: 'replica', epoch, upstream: { host: '10.9.9.9', port: 5432 }, desired: 'removed' });
    await waitFor(
      async () =>
        (await readRecord(suite.client, assignmentCodec, h.keys.assignment(h.node, h.instanceId, 0))) === undefined,
      {
        description: 'assignment deleted after removal',
        timeoutMs: 20_000,
      },
    );
    assert.equal(await volumeExists(newVolume), false, 'the volume in use is removed');
    assert.equal(await volumeExists(h.container(0)), true, 'the superseded volume is kept');
  });

  test('a restarted agent adopts a running primary: asks its role, checks the epoch, does not restart it', async (t) => {
    const h = await start(t);
    await h.assign(0, { role: 'primary', epoch: 0 });
    await h.status(0, 'running primary', (s) => s.state === 'running' && s.role === 'primary');
    const epoch = await h.putPrimary(0);
    await h.assign(0, { role: 'primary', epoch });
    const before = await h.status(0, 'primary at the elected epoch', (s) => s.epoch === epoch);
    const startedAt = (await containerState(h.container(0)))?.State.StartedAt;
    await h.agent.stop();

    const second = await startAgent({ ...h.agent.config }, { log: silentLogger() });
    // Hooks run in registration order: the harness's clean-up ran before this agent stopped,
    // so this one stops the second agent and cleans up again, or it would recreate the container.
    t.after(async () => {
      await second.stop();
      await removeClusterResources(h.clusterId);
    });
    const adopted = await h.status(0, 'adopted', (s) => s.state === 'running' && s.role === 'primary');
    assert.equal(adopted.epoch, epoch);
    assert.equal(adopted.containerId, before.containerId);
    assert.equal((await containerState(h.container(0)))?.State.StartedAt, startedAt, 'not restarted');
    assert.ok(!(await h.actions(0)).includes('promote'), 'an adopted primary is not promoted again');
  });
});
