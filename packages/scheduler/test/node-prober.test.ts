import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { etcdUsers, type NodeRecord, type Versioned, waitFor } from '@service-foundry/core';
import { silentLogger } from '@service-foundry/test-support/logger';
import { makeTestPki, type TestPki } from '@service-foundry/test-support/test-pki';
import { readVolumeTls } from '@service-foundry/volumes';
import { NodeProber } from '../src/node-prober.js';

const childScript = resolve(import.meta.dirname, 'alive-server-child.ts');
const nodeNames = ['n1', 'n2', 'n3'] as const;

interface ServerChild {
  child: ChildProcess;
  url: string;
}

/** A node's real volume server in its own process, so it can be paused like a stopped agent. */
async function startServer(pki: TestPki, node: string): Promise<ServerChild> {
  const tls = pki.volumeTls(node);
  const child = spawn(process.execPath, ['--import', 'tsx', childScript, tls.certFile, tls.keyFile, tls.caFile], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const [line] = (await Promise.race([
    once(lines, 'line'),
    once(child, 'exit').then(([code]) => Promise.reject(new Error(`volume server of ${node} exited (${code})`))),
  ])) as [string];
  return { child, url: line };
}

function registration(name: string, volumeUrl: string, createRevision = '1'): Versioned<NodeRecord> {
  const value: NodeRecord = {
    name,
    address: '127.0.0.1',
    capacity: { cpuMillis: 1000, memoryMb: 1024, diskMb: 1024 },
    labels: {},
    startedAt: new Date().toISOString(),
    volumeUrl,
  };
  return { key: `/sf/nodes/${name}`, value, modRevision: createRevision, createRevision, lease: '7' };
}

describe('node prober: agents that stop answering (real volume servers, paused with SIGSTOP)', () => {
  let pki: TestPki;
  const servers = new Map<string, ServerChild>();
  let prober: NodeProber;
  let nodes: Array<Versioned<NodeRecord>> = [];
  let changes = 0;

  before(async () => {
    pki = await makeTestPki(
      nodeNames.map((name) => ({ name, address: '127.0.0.1' })),
      { clients: true },
    );
    for (const name of nodeNames) servers.set(name, await startServer(pki, name));
    nodes = nodeNames.map((name) => registration(name, servers.get(name)?.url ?? ''));
    prober = new NodeProber({
      intervalMs: 100,
      timeoutMs: 300,
      failuresToSilence: 2,
      tls: await readVolumeTls(pki.clientTls(etcdUsers.scheduler)),
      nodes: () => nodes,
      onChange: () => changes++,
      log: silentLogger(),
    });
    prober.start();
    await waitFor(() => nodeNames.every((name) => prober.describe(name)?.answeredOnce), {
      description: 'every node answered once',
      timeoutMs: 10_000,
    });
  });

  after(async () => {
    prober?.stop();
    for (const { child } of servers.values()) {
      child.kill('SIGCONT');
      child.kill('SIGKILL');
    }
    await pki?.remove();
  });

  const pause = (name: string) => servers.get(name)?.child.kill('SIGSTOP');
  const resume = (name: string) => servers.get(name)?.child.kill('SIGCONT');

  it('answers from every node: nobody is silent', () => {
    assert.deepEqual([...prober.silentNodes()], []);
  });

  it('a paused agent turns silent within a few probes, and answers again once resumed', async () => {
    const before = changes;
    const pausedAt = Date.now();
    pause('n1');
    try {
      await waitFor(() => prober.silentNodes().has('n1'), { description: 'n1 silent', timeoutMs: 5000 });
      const took = Date.now() - pausedAt;
      assert.ok(took >= 2 * 300, `silent after ${took} ms: two probes must have timed out first`);
      assert.deepEqual([...prober.silentNodes()], ['n1']);
      assert.ok(changes > before, 'the controller was told');
    } finally {
      resume('n1');
    }
    await waitFor(() => prober.silentNodes().size === 0, { description: 'n1 answers again', timeoutMs: 5000 });
  });

  it('names nobody when as many nodes are silent as answer (the scheduler may be the one cut off)', async () => {
    pause('n1');
    pause('n2');
    try {
      await waitFor(() => prober.describe('n1')?.silent === true && prober.describe('n2')?.silent === true, {
        description: 'n1 and n2 silent',
        timeoutMs: 5000,
      });
      assert.deepEqual([...prober.silentNodes()], []);
    } finally {
      resume('n1');
      resume('n2');
    }
    await waitFor(() => !prober.describe('n1')?.silent && !prober.describe('n2')?.silent, {
      description: 'both answer again',
      timeoutMs: 5000,
    });
  });

  it('takes no answer from another node’s server, and never calls a node silent that never answered', async () => {
    const n3 = servers.get('n3')?.url ?? '';
    // n2's registration points at n3's server: its certificate names sf-volumes.n3.
    nodes = [registration('n1', servers.get('n1')?.url ?? ''), registration('n2', n3, '2'), registration('n3', n3)];
    try {
      await waitFor(() => (prober.describe('n2')?.failures ?? 0) >= 4, {
        description: 'n2 probes fail',
        timeoutMs: 5000,
      });
      assert.equal(prober.describe('n2')?.answeredOnce, false, 'a new registration starts unanswered');
      assert.equal(prober.describe('n2')?.silent, false);
      assert.deepEqual([...prober.silentNodes()], []);
    } finally {
      nodes = nodeNames.map((name) => registration(name, servers.get(name)?.url ?? ''));
    }
  });

  it('a killed agent on a live host (connection refused) is not silence: its lease decides', async () => {
    const before = prober.describe('n3')?.probes ?? 0;
    servers.get('n3')?.child.kill('SIGKILL');
    await waitFor(() => (prober.describe('n3')?.probes ?? 0) >= before + 5, {
      description: 'five probes of n3 after its kill',
      timeoutMs: 5000,
    });
    assert.match(prober.describe('n3')?.lastError ?? '', /ECONNREFUSED/);
    assert.equal(prober.describe('n3')?.silent, false);
    assert.deepEqual([...prober.silentNodes()], []);
  });

  it('a silent node stays silent when its process is then killed (refused): only an answer ends silence', async () => {
    pause('n1');
    await waitFor(() => prober.silentNodes().has('n1'), { description: 'n1 silent', timeoutMs: 5000 });
    const before = prober.describe('n1')?.probes ?? 0;
    servers.get('n1')?.child.kill('SIGKILL');
    await waitFor(() => (prober.describe('n1')?.probes ?? 0) >= before + 3, {
      description: 'three probes of n1 after its kill',
      timeoutMs: 5000,
    });
    assert.match(prober.describe('n1')?.lastError ?? '', /ECONNREFUSED/);
    assert.deepEqual([...prober.silentNodes()], ['n1']);
  });
});
