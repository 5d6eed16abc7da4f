import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  connectEtcd,
  type Etcd3,
  type EtcdProcess,
  freePort,
  Keyspace,
  startEtcd,
  waitFor,
} from '@service-foundry/core';
import { secretBox, silentLogger, suiteTempDir } from '@service-foundry/test-support';
import { Fencing } from '../src/index.js';
import { fastOptions, testAgentDirs, writeAgent } from './helpers.js';

/**
 * The devices powered a node off, and etcd cannot take the outcome just then (its leader
 * was on that node, say): the outcome is written once etcd answers again, instead of
 * being lost and leaving the node `fencing` until the claim's deadline.
 */
describe('fencing outcome written after etcd comes back (a real etcd, stopped and started again)', () => {
  const dir = suiteTempDir('sf-fencing-outcome');
  const dataDir = () => join(dir.path, 'etcd');
  let ports: { clientPort: number; peerPort: number };
  let etcd: EtcdProcess | undefined;
  let client: Etcd3;

  before(async () => {
    ports = { clientPort: await freePort(), peerPort: await freePort() };
    etcd = await startEtcd({ dataDir: dataDir(), ...ports });
    client = connectEtcd({ endpoints: [etcd.endpoint] });
  });
  after(async () => {
    client?.close();
    await etcd?.stop();
  });

  it('keeps the confirmed fence when the outcome write first fails', async () => {
    const keys = new Keyspace('/sf-outcome');
    const fencing = new Fencing(
      client,
      keys,
      { ...fastOptions, agentDirs: testAgentDirs(dir.path) },
      {
        log: silentLogger(),
        secrets: secretBox,
      },
    );
    const gate = join(dir.path, 'go');
    // `off` waits for the gate, so etcd can be stopped while the device runs.
    const agent = await writeAgent(dir.path, 'gated', `while [ ! -f ${gate} ]; do sleep 0.02; done\nexit 0`);
    await fencing.store.setDevices(
      'n1',
      { levels: [{ devices: [{ agent, retries: 0, confirm: 'exit-code' }] }] },
      'ops',
    );

    const running = fencing.fence('n1', { by: 'controller', reason: 'silent' });
    await waitFor(async () => (await fencing.store.record('n1'))?.value.state === 'fencing', {
      description: 'the fencing claim',
      timeoutMs: 10_000,
      intervalMs: 20,
    });
    await etcd?.stop();
    etcd = undefined;
    await writeFile(gate, '');
    // The outcome write is failing now; etcd comes back on the same data and ports.
    etcd = await startEtcd({ dataDir: dataDir(), ...ports });
    const result = await running;
    assert.equal(result.state, 'fenced');
    assert.equal((await fencing.store.record('n1'))?.value.state, 'fenced');
  });
});
