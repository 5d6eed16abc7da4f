import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { compileRouterConfig } from '@service-foundry/router';
import { makeTempDir } from '@service-foundry/test-support';
import { type ClusterFile, readClusterFile } from '../src/cluster/cluster-file.js';
import { ComponentConfigs } from '../src/cluster/component-configs.js';
import type { ClusterPki } from '../src/cluster/pki.js';

const run = promisify(execFile);
const cliMain = resolve(import.meta.dirname, '../dist/main.js');

test('`sf up --router-data-plane` is gone: a usage error that sets nothing up', async () => {
  const dir = await makeTempDir('sf-data-plane');
  try {
    const home = join(dir.path, 'home');
    const failure = await run(process.execPath, [cliMain, 'up', '--router-data-plane', 'node'], {
      env: { ...process.env, SF_HOME: home },
    }).then(
      () => assert.fail('sf up accepted --router-data-plane'),
      (error: { code: number; stderr: string }) => error,
    );
    assert.equal(failure.code, 2);
    assert.match(failure.stderr, /router-data-plane/);
    assert.equal(existsSync(join(home, 'cluster.json')), false, 'no cluster file written');
  } finally {
    await dir.remove();
  }
});

test('a cluster file written while the router had two data planes still loads, and its routers get a config the router accepts', async () => {
  const dir = await makeTempDir('sf-data-plane');
  try {
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
    // Only the etcd client files are asked of the PKI here; which files they are does not matter.
    const pki = { client: () => undefined } as unknown as ClusterPki;
    for (const routerDataPlane of ['node', 'haproxy']) {
      await writeFile(join(state, 'cluster.json'), JSON.stringify({ ...file, routerDataPlane }));
      const cluster = (await readClusterFile(state)) as ClusterFile;
      assert.equal(cluster.routerDataPlane, routerDataPlane);
      const config = new ComponentConfigs(cluster, pki, dir.path).router({ name: 'router-1', host: '127.0.0.1' });
      assert.equal('dataPlane' in config, false, `no dataPlane in the router config (${routerDataPlane})`);
      assert.doesNotThrow(() => compileRouterConfig(config), `the router accepts it (${routerDataPlane})`);
    }
    await writeFile(join(state, 'cluster.json'), JSON.stringify({ ...file, routerDataPlane: 'nginx' }));
    await assert.rejects(readClusterFile(state), /routerDataPlane/);
  } finally {
    await dir.remove();
  }
});
