import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { spawnWatched, suiteTempDir } from '@service-foundry/test-support';
import { compileAgentConfig } from '../src/index.js';

const mainJs = fileURLToPath(new URL('../dist/main.js', import.meta.url));

async function runMain(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const run = spawnWatched(process.execPath, [mainJs, ...args]);
  const { code } = await run.exited;
  return { code, stdout: run.stdout(), stderr: run.stderr() };
}

describe('agent main with a bad invocation', () => {
  const dir = suiteTempDir('sf-agent-config');
  before(() => {
    assert.ok(existsSync(mainJs), `${mainJs} is missing: run \`npx tsc -b\` first`);
  });

  async function configFile(name: string, content: string): Promise<string> {
    const file = join(dir.path, name);
    await writeFile(file, content);
    return file;
  }

  function assertOneLineError(result: { code: number | null; stdout: string; stderr: string }, pattern: RegExp) {
    assert.equal(result.code, 2, `exit code 2; stderr: ${result.stderr}`);
    assert.equal(result.stdout, '', 'nothing started, nothing logged');
    const lines = result.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, `one line: ${result.stderr}`);
    assert.match(lines[0] ?? '', pattern);
  }

  test('invalid values name every offending field', async () => {
    const file = await configFile(
      'bad.json',
      JSON.stringify({
        etcdEndpoints: [],
        node: 'no/slashes',
        leaseTtlSeconds: 0,
        nodeName: 'typo',
        backupHookTimeoutMs: 10,
      }),
    );
    const result = await runMain(['--config', file]);
    assertOneLineError(result, /invalid agent config/);
    assert.match(result.stderr, /\/etcdEndpoints/);
    assert.match(result.stderr, /\/node /);
    assert.match(result.stderr, /\/leaseTtlSeconds/);
    assert.match(result.stderr, /\/backupHookTimeoutMs/);
    assert.match(result.stderr, /unknown field "nodeName"/);
  });

  test('a config without the secrets key file is refused', () => {
    assert.throws(
      () => compileAgentConfig({ etcdEndpoints: ['http://127.0.0.1:2379'], node: 'n1' }),
      /must have required property 'secretsKeyFile'/,
    );
  });

  test('https endpoints and TLS files go together', () => {
    const base = { secretsKeyFile: '/x/secrets.key', node: 'n1' };
    const tls = { caFile: '/pki/ca.crt', certFile: '/pki/a.crt', keyFile: '/pki/a.key' };
    assert.deepEqual(
      compileAgentConfig({ ...base, etcdEndpoints: ['https://10.0.0.1:2379'], etcdTls: tls }).etcdTls,
      tls,
    );
    assert.throws(
      () => compileAgentConfig({ ...base, etcdEndpoints: ['https://10.0.0.1:2379'], etcdTls: { caFile: 'ca.crt' } }),
      /etcdTls/,
    );
  });

  test('a missing required field', async () => {
    const file = await configFile(
      'no-node.json',
      JSON.stringify({ etcdEndpoints: ['http://127.0.0.1:2379'], secretsKeyFile: '/x/secrets.key' }),
    );
    assertOneLineError(await runMain(['--config', file]), /must have required property 'node'/);
  });

  test('a file that is not JSON', async () => {
    const file = await configFile('broken.json', '{ "node": ');
    assertOneLineError(await runMain(['--config', file]), /cannot read config file .*broken\.json/);
  });

  test('a file that does not exist', async () => {
    assertOneLineError(await runMain(['--config', join(dir.path, 'absent.json')]), /cannot read config file .*ENOENT/);
  });

  test('no --config at all, or an unknown flag', async () => {
    assertOneLineError(await runMain([]), /missing --config; usage:/);
    assertOneLineError(await runMain(['--confg', 'x.json']), /Unknown option '--confg'/);
  });

  test('defaults fill every optional field', () => {
    const config = compileAgentConfig({
      etcdEndpoints: ['http://127.0.0.1:2379'],
      secretsKeyFile: '/x/secrets.key',
      node: 'n1',
    });
    assert.equal(config.keyspaceRoot, '/sf');
    assert.equal(config.address, '127.0.0.1');
    assert.deepEqual(config.capacity, { cpuMillis: 4000, memoryMb: 8192, diskMb: 51200 });
    assert.deepEqual(config.labels, {});
    assert.equal(config.leaseTtlSeconds, 10);
    assert.equal(config.reconcileIntervalMs, 5000);
    assert.equal(config.dockerSocket, '/var/run/docker.sock');
    assert.equal(config.clusterId, 'sf');
    assert.ok(config.catalogDir.endsWith('services-catalog'));
    assert.equal(config.peerAddress, 'container');
    assert.equal(config.positionIntervalMs, 1000);
    assert.equal(config.selfFenceMarginMs, 2500, 'a quarter of the 10 s TTL');
    assert.equal(config.selfFenceCheckIntervalMs, 200);
    assert.equal(config.replicationCommandTimeoutMs, 30_000);
    assert.equal(config.backupHookTimeoutMs, 1_800_000, 'a pg_basebackup of a large database takes minutes');
    assert.ok(Object.isFrozen(config));
  });

  test('the self-fence margin defaults to a quarter of the TTL, at least 500 ms, and must leave room', () => {
    const base = { etcdEndpoints: ['http://127.0.0.1:2379'], secretsKeyFile: '/x/secrets.key', node: 'n1' };
    assert.equal(compileAgentConfig({ ...base, leaseTtlSeconds: 2 }).selfFenceMarginMs, 500);
    assert.equal(compileAgentConfig({ ...base, leaseTtlSeconds: 3 }).selfFenceMarginMs, 750);
    assert.equal(compileAgentConfig({ ...base, leaseTtlSeconds: 3, selfFenceMarginMs: 1000 }).selfFenceMarginMs, 1000);
    assert.throws(
      () => compileAgentConfig({ ...base, leaseTtlSeconds: 3, selfFenceMarginMs: 2000 }),
      /selfFenceMarginMs must be below two thirds of leaseTtlSeconds \(2000 ms\); got 2000/,
    );
    assert.throws(() => compileAgentConfig({ ...base, peerAddress: 'host' }), /\/peerAddress must be equal to one of/);
    // A compiled config is accepted again as it is (startAgent takes either).
    const compiled = compileAgentConfig({ ...base, leaseTtlSeconds: 2 });
    assert.deepEqual(compileAgentConfig(compiled), compiled);
  });
});
