import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  eventCodec,
  instanceCodec,
  json,
  type ReplicaStatus,
  readPrefix,
  readRecord,
  schedulerMemberCodec,
  waitFor,
} from '@service-foundry/core';
import { startTestEtcd, type TestEtcd } from '@service-foundry/test-support';
import { captureLog } from '@service-foundry/test-support/logger';
import { type RunningScheduler, startScheduler } from '../src/index.js';
import { instanceRecord, registerNode, schedulerConfig } from './helpers.js';

/**
 * Two schedulers with controllers, as `sf up` runs them: only the leader's controller acts,
 * and the standby's takes over when the leader goes.
 */
describe('leader and standby: one controller decides', () => {
  let f: TestEtcd;
  let leader: RunningScheduler;
  let standby: RunningScheduler;
  let nodeLease = '';
  before(async () => {
    f = await startTestEtcd();
    nodeLease = await registerNode(f, 'node-a', { cpuMillis: 1000, memoryMb: 1000, diskMb: 1000 });
    leader = await startScheduler(schedulerConfig(f, { intervalMs: 100, name: 'ctl-a', lockTtlSeconds: 2 }));
    standby = await startScheduler(schedulerConfig(f, { intervalMs: 100, name: 'ctl-b', lockTtlSeconds: 2 }));
  });
  after(async () => {
    await standby?.stop();
    await leader?.stop();
    await f?.stop();
  });

  /** Provisions `id` with one replica and answers for it as its agent would, until it is ready. */
  const provisionToReady = async (id: string, port: number) => {
    await f.client
      .put(f.keys.instance(id))
      .value(json(instanceRecord(id, 1, { cpuMillis: 100, memoryMb: 100, diskMb: 100 }, port)))
      .exec();
    const status: ReplicaStatus = {
      instanceId: id,
      ordinal: 0,
      node: 'node-a',
      state: 'running',
      host: '127.0.0.9',
      port,
      message: 'ready',
      updatedAt: new Date().toISOString(),
      role: 'primary',
      epoch: 0,
      peer: { host: '172.17.0.9', port: 5432 },
    };
    await f.client.put(f.keys.status(id, 0)).value(json(status)).lease(nodeLease).exec();
    await waitFor(
      async () => (await readRecord(f.client, instanceCodec, f.keys.instance(id)))?.value.phase === 'ready',
      { description: `${id} ready`, timeoutMs: 20_000 },
    );
  };
  const sourcesOf = async (id: string) => {
    const events = await readPrefix(f.client, eventCodec, f.keys.events());
    return new Set([...events.items.values()].filter((e) => e.value.instanceId === id).map((e) => e.value.source));
  };

  it("only the leader's controller records decisions about an instance", async () => {
    await provisionToReady('pg1', 40123);
    assert.deepEqual([...(await sourcesOf('pg1'))], ['ctl-a']);
  });

  it("the standby's controller takes over once the leader is gone", async () => {
    await leader.stop();
    await provisionToReady('pg2', 40124);
    assert.deepEqual([...(await sourcesOf('pg2'))], ['ctl-b']);
  });

  it("a second process under a running member's name waits for that member's key; it registers once the key is gone", async () => {
    const key = f.keys.scheduler('ctl-b');
    const original = await readRecord(f.client, schedulerMemberCodec, key);
    assert.ok(original, 'ctl-b is registered');
    const captured = captureLog();
    const twin = await startScheduler(schedulerConfig(f, { intervalMs: 100, name: 'ctl-b', lockTtlSeconds: 2 }), {
      log: captured.log,
    });
    try {
      await waitFor(() => captured.lines.some((l) => /membership key still held/.test(String(l.msg))), {
        description: 'the twin to see the key held',
      });
      const during = await readRecord(f.client, schedulerMemberCodec, key);
      assert.equal(during?.value.startedAt, original.value.startedAt, "the twin did not take the member's key");
      assert.equal(during?.lease, original.lease);
      await standby.stop();
      const taken = await waitFor(
        async () => {
          const now = await readRecord(f.client, schedulerMemberCodec, key);
          return now && now.lease !== original.lease ? now : undefined;
        },
        { description: 'the twin to register once the key is gone' },
      );
      assert.ok(BigInt(taken.createRevision) > BigInt(original.createRevision), 'a new member, not the old one');
    } finally {
      await twin.stop();
    }
  });
});
