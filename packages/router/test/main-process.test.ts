import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freePort, waitFor } from '@service-foundry/core';
import {
  spawnWatched,
  startTestEtcd,
  suiteTempDir,
  type TestEtcd,
  type WatchedProcess,
} from '@service-foundry/test-support';
import {
  type EchoServer,
  isRunning,
  putRoute,
  runningChildren,
  startEchoServer,
  TestClient,
  tcpRoute,
  tryConnect,
} from './helpers.js';

const mainJs = fileURLToPath(new URL('../dist/main.js', import.meta.url));

function runMain(args: string[]): WatchedProcess {
  return spawnWatched(process.execPath, [mainJs, ...args], { env: { ...process.env, SF_LOG_LEVEL: 'info' } });
}

async function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

describe('router main process', () => {
  const dir = suiteTempDir('sf-router-main');
  const running: WatchedProcess[] = [];

  before(async () => {
    assert.ok(existsSync(mainJs), `${mainJs} is missing: run \`npx tsc -b\` first`);
  });

  after(async () => {
    for (const run of running) {
      if (run.child.exitCode === null && run.child.signalCode === null) {
        run.child.kill('SIGKILL');
        await run.exited;
      }
    }
  });

  const expectUsageError = async (args: string[], pattern: RegExp) => {
    const run = runMain(args);
    running.push(run);
    const { code } = await withDeadline(run.exited, 10_000, 'exit');
    assert.equal(code, 2, `stderr: ${run.stderr()}`);
    const lines = run.stderr().trimEnd().split('\n');
    assert.equal(lines.length, 1, `one line on stderr, got: ${run.stderr()}`);
    assert.match(lines[0] ?? '', pattern);
    return lines[0] ?? '';
  };

  it('exits 2 with a one-line message for a bad config file', async () => {
    const file = join(dir.path, 'bad.json');
    await writeFile(file, JSON.stringify({ etcdEndpoints: 'http://127.0.0.1:2379', listenPort: 7000 }));
    const line = await expectUsageError(['--config', file], /^router: .*bad\.json: invalid router config: /);
    assert.match(line, /\/etcdEndpoints must be array/);
    assert.match(line, /unknown field "listenPort"/);
  });

  it('exits 2 for a config file that is not JSON, is missing, or not given', async () => {
    const file = join(dir.path, 'broken.json');
    await writeFile(file, '{ "etcdEndpoints": [');
    await expectUsageError(['--config', file], /not valid JSON/);
    await expectUsageError(['--config', join(dir.path, 'absent.json')], /cannot read config file .*ENOENT/);
    await expectUsageError([], /missing --config; usage:/);
  });

  describe('with a good config', () => {
    let env: TestEtcd;
    let primary: EchoServer;

    before(async () => {
      env = await startTestEtcd();
      primary = await startEchoServer('main-primary');
    });

    after(async () => {
      await primary?.close();
      await env?.stop();
    });

    it('logs ready, routes, and exits 0 on SIGTERM', async () => {
      const port = await freePort();
      await putRoute(env, tcpRoute('main-1', port, primary.port, { epoch: 7 }));
      const file = join(dir.path, 'good.json');
      await writeFile(file, JSON.stringify({ etcdEndpoints: [env.endpoint], keyspaceRoot: env.keys.root }));
      const run = runMain(['--config', file]);
      running.push(run);

      await waitFor(
        () => {
          if (run.child.exitCode !== null) throw new Error(`exited early: ${run.stderr()}`);
          return run
            .stdout()
            .split('\n')
            .some((line) => line.includes('"msg":"ready"'));
        },
        { description: 'ready line', timeoutMs: 10_000, intervalMs: 20 },
      );
      await waitFor(async () => (await tryConnect(port)) === 'connected', {
        description: 'route port open',
        timeoutMs: 5000,
        intervalMs: 20,
      });
      const client = await TestClient.connect(port);
      await client.waitForText('main-primary\n');
      client.socket.write('through the process\n');
      await client.waitForText('through the process\n');

      run.child.kill('SIGTERM');
      const { code, signal } = await withDeadline(run.exited, 10_000, 'exit after SIGTERM');
      assert.equal(signal, null);
      assert.equal(code, 0, `stderr: ${run.stderr()}`);
      await client.waitForClose(2000);
      assert.equal(await tryConnect(port), 'ECONNREFUSED');
    });

    it('takes its HAProxy processes down with it when killed: no route outlives its control plane', async () => {
      const port = await freePort();
      await putRoute(env, tcpRoute('main-2', port, primary.port, { epoch: 3 }));
      const file = join(dir.path, 'haproxy.json');
      await writeFile(file, JSON.stringify({ etcdEndpoints: [env.endpoint], keyspaceRoot: env.keys.root }));
      const run = runMain(['--config', file]);
      running.push(run);
      await waitFor(async () => (await tryConnect(port)) === 'connected', {
        description: 'route port open',
        timeoutMs: 10_000,
        intervalMs: 20,
      });
      const client = await TestClient.connect(port);
      await client.waitForText('main-primary\n');
      const pid = run.child.pid;
      assert.ok(pid);
      const children = runningChildren(pid).map((child) => child.pid);
      assert.ok(children.length >= 1, 'HAProxy runs as a child of the router');

      run.child.kill('SIGKILL');
      await withDeadline(run.exited, 10_000, 'exit after SIGKILL');
      await waitFor(() => !children.some(isRunning), {
        description: 'HAProxy gone with the router',
        timeoutMs: 5000,
        intervalMs: 20,
      });
      await client.waitForClose(2000);
      assert.equal(await tryConnect(port), 'ECONNREFUSED');
    });
  });
});
