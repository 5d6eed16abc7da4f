import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type EtcdProcess, startEtcd, waitFor } from '@service-foundry/core';
import { brokerLogins, call, secretsKeyFile } from './helpers.js';

const mainJs = resolve(dirname(fileURLToPath(import.meta.url)), '../dist/main.js');

describe('broker: main.js process', () => {
  let dir: string;
  let etcd: EtcdProcess;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sf-broker-main-'));
    etcd = await startEtcd({ dataDir: join(dir, 'etcd') });
  });
  after(async () => {
    await etcd?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('starts from a config file, logs one ready line with its URL, and exits 0 on SIGTERM', async () => {
    const file = join(dir, 'broker.json');
    const config = {
      etcdEndpoints: [etcd.endpoint],
      keyspaceRoot: '/test-main',
      secretsKeyFile,
      port: 0,
      ...brokerLogins,
    };
    await writeFile(file, JSON.stringify(config));
    const child = spawn(process.execPath, [mainJs, '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    try {
      const url = await waitFor(
        () => {
          const ready = stdout.split('\n').find((line) => line.includes('"broker ready"'));
          return ready ? (JSON.parse(ready) as { url: string }).url : undefined;
        },
        { description: 'the broker ready line', timeoutMs: 15_000 },
      );
      const res = await call(url, 'GET', '/v2/catalog');
      assert.equal(res.status, 200);
      for (const login of [...brokerLogins.operators, brokerLogins.osb]) {
        assert.ok(!stdout.includes(login.password), 'no password is ever logged');
      }
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const [code] = await exited;
      assert.equal(code, 0);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });

  it('exits 2 with one clear line on stderr for a bad config', async () => {
    const file = join(dir, 'bad.json');
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
    const child = spawn(process.execPath, [mainJs, '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const [code] = await once(child, 'exit');
    assert.equal(code, 2);
    const lines = stderr.trim().split('\n');
    assert.equal(lines.length, 1, stderr);
    assert.match(lines[0] ?? '', /invalid broker config: .*password.*colour|invalid broker config: .*colour.*password/);
  });
});
