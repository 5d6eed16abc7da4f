import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { makeTempDir } from '@service-foundry/test-support';
import { type ClusterFile, readClusterFile } from '../src/cluster/cluster-file.js';
import { ComponentConfigs } from '../src/cluster/component-configs.js';
import type { ClusterPki } from '../src/cluster/pki.js';

const run = promisify(execFile);
const cliMain = resolve(import.meta.dirname, '../dist/main.js');

test('`sf up --router-data-plane` takes node or haproxy; anything else is a usage error that sets nothing up', async () => {
  const dir = await makeTempDir('sf-data-plane');
  try {
    const home = join(dir.path, 'home');
    const failure = await run(process.execPath, [cliMain, 'up', '--router-data-plane', 'nginx'], {
      env: { ...process.env, SF_HOME: home },
    }).then(
      () => assert.fail('sf up accepted --router-data-plane nginx'),
      (error: { code: number; stderr: string }) => error,
    );
    assert.equal(failure.code, 2);
    assert.match(failure.stderr, /--router-data-plane is node .* or haproxy/);
    assert.equal(existsSync(join(home, 'cluster.json')), false, 'no cluster file written');
  } finally {
    await dir.remove();
  }
});

test("the cluster file carries the routers' data plane into their config, node when absent; other values are refused", async () => {
  const dir = await makeTempDir('sf-data-plane');
  try {
    const cluster = {
      externalEtcd: [],
      etcdClientPort: 2379,
      keyspaceRoot: '/sf',
      clusterId: 'c1',
      routerHost: '127.0.0.1',
    };
    // Only the etcd client files are asked of the PKI here; which files they are does not matter.
    const pki = { client: () => undefined } as unknown as ClusterPki;
    const router = { name: 'router-1', host: '127.0.0.1' };
    const configsOf = (fields: Partial<ClusterFile>) =>
      new ComponentConfigs({ ...cluster, ...fields } as Partial<ClusterFile> as ClusterFile, pki, dir.path);
    assert.equal(configsOf({}).router(router).dataPlane, 'node');
    assert.equal(configsOf({ routerDataPlane: 'haproxy' }).router(router).dataPlane, 'haproxy');

    const state = join(dir.path, 'state');
    await mkdir(state);
    const file = {
      clusterId: 'c1',
      etcdClientPort: 2379,
      etcdPeerPort: 2380,
      brokerPort: 8470,
      brokerUsername: 'admin',
      brokerPassword: 'a-password-long-enough',
      routerHttpPort: 8480,
      routerPortMin: 30000,
      routerPortMax: 30999,
      nodes: [{ name: 'node-1', address: '127.0.1.1' }],
    };
    await writeFile(join(state, 'cluster.json'), JSON.stringify({ ...file, routerDataPlane: 'haproxy' }));
    assert.equal((await readClusterFile(state))?.routerDataPlane, 'haproxy');
    await writeFile(join(state, 'cluster.json'), JSON.stringify({ ...file, routerDataPlane: 'nginx' }));
    await assert.rejects(readClusterFile(state), /routerDataPlane/);
  } finally {
    await dir.remove();
  }
});
