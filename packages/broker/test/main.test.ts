import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  secretsKeyFile,
  spawnWatched,
  startTestEtcd,
  suiteTempDir,
  type TestEtcd,
} from '@service-foundry/test-support';
import { brokerLogins, call } from '@service-foundry/test-support/broker-calls';
import { brokerMainJs, startBrokerMain } from './helpers.js';

describe('broker: main.js process', () => {
  const dir = suiteTempDir('sf-broker-main');
  let etcd: TestEtcd;
  before(async () => {
    etcd = await startTestEtcd();
  });
  after(async () => {
    await etcd?.stop();
  });

  it('starts from a config file, logs one ready line with its URL, and exits 0 on SIGTERM', async () => {
    const file = join(dir.path, 'broker.json');
    const config = {
      etcdEndpoints: [etcd.endpoint],
      keyspaceRoot: '/test-main',
      secretsKeyFile,
      port: 0,
      ...brokerLogins,
    };
    await writeFile(file, JSON.stringify(config));
    const { run, url } = await startBrokerMain(file);
    try {
      const res = await call(url, 'GET', '/v2/catalog');
      assert.equal(res.status, 200);
      for (const login of [...brokerLogins.operators, brokerLogins.osb]) {
        assert.ok(!run.stdout().includes(login.password), 'no password is ever logged');
      }
      run.child.kill('SIGTERM');
      const { code } = await run.exited;
      assert.equal(code, 0);
    } finally {
      if (run.running()) run.child.kill('SIGKILL');
    }
  });

  it('exits 2 with one clear line on stderr for a bad config', async () => {
    const file = join(dir.path, 'bad.json');
    await writeFile(
      file,
      JSON.stringify({
        etcdEndpoints: [etcd.endpoint],
        secretsKeyFile,
        osb: { username: 'cf', password: 'short' },
        operators: brokerLogins.operators,
        colour: 'blue',
      }),
    );
    const run = spawnWatched(process.execPath, [brokerMainJs, '--config', file]);
    const { code } = await run.exited;
    assert.equal(code, 2);
    const lines = run.stderr().trim().split('\n');
    assert.equal(lines.length, 1, run.stderr());
    assert.match(lines[0] ?? '', /invalid broker config: .*password.*colour|invalid broker config: .*colour.*password/);
  });
});
