import assert from 'node:assert/strict';
import { open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { waitFor } from '@service-foundry/core';
import { tempDirFor } from '@service-foundry/test-support';
import { spawnWatched, type WatchedProcess } from '@service-foundry/test-support/child-output';
import { backoffMs } from '../src/supervision/supervision-spec.js';
import { readSupervisionState } from '../src/supervision/supervision-state.js';

const superviseMain = fileURLToPath(new URL('../dist/supervision/supervise-main.js', import.meta.url));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function pidIn(file: string): Promise<number | undefined> {
  const pid = Number((await readFile(file, 'utf8').catch(() => '')).trim());
  return Number.isInteger(pid) && pid > 1 ? pid : undefined;
}

/** A supervisor of `script` (run by node) in `dir`; killed with its child when the test ends. */
async function supervise(
  t: { after(fn: () => Promise<void>): void },
  script: string | ((dir: string) => string),
  spec: Record<string, unknown> = {},
): Promise<{ sup: WatchedProcess; pidFile: string; stateFile: string; dir: string }> {
  const dir = await tempDirFor(t, 'sf-supervise');
  const pidFile = join(dir, 'component.pid');
  const stateFile = join(dir, 'state.json');
  const specFile = join(dir, 'spec.json');
  await writeFile(
    specFile,
    JSON.stringify({
      name: 'component',
      argv: [process.execPath, '-e', typeof script === 'string' ? script : script(dir)],
      pidFile,
      stateFile,
      ...spec,
    }),
  );
  // Output to a file, not a pipe: the component inherits it, and a pipe would stay open
  // (and the supervisor's 'close' never come) while the component lives.
  const log = await open(join(dir, 'supervisor.log'), 'a');
  const sup = spawnWatched(process.execPath, [superviseMain, '--spec', specFile], {
    stdio: ['ignore', log.fd, log.fd],
  });
  await log.close();
  t.after(async () => {
    sup.child.kill('SIGKILL');
    await sup.exited;
    const child = await pidIn(pidFile);
    if (child && alive(child)) process.kill(child, 'SIGKILL');
  });
  return { sup, pidFile, stateFile, dir };
}

const idle = 'setInterval(() => {}, 1000)';

it('backoff doubles per crash in a row and never exceeds the cap', () => {
  const spec = { minBackoffMs: 100, maxBackoffMs: 2000 };
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6, 40].map((n) => backoffMs(spec, n)),
    [100, 200, 400, 800, 1600, 2000, 2000],
  );
});

it('a component killed with SIGKILL runs again within 2 s, and the state says why it exited', async (t) => {
  const { pidFile, stateFile } = await supervise(t, idle);
  const first = await waitFor(() => pidIn(pidFile), { description: 'the first start', timeoutMs: 10_000 });
  const killedAt = Date.now();
  process.kill(first, 'SIGKILL');
  const second = await waitFor(
    async () => {
      const pid = await pidIn(pidFile);
      return pid !== undefined && pid !== first && alive(pid) ? pid : undefined;
    },
    { description: 'the restart', timeoutMs: 2000, intervalMs: 20 },
  );
  t.diagnostic(`restarted as pid ${second} ${Date.now() - killedAt} ms after kill -9`);
  const state = await waitFor(
    async () => {
      const s = await readSupervisionState(stateFile);
      return s?.pid === second ? s : undefined;
    },
    { description: 'the state of the second run', timeoutMs: 2000 },
  );
  assert.equal(state.restarts, 1);
  assert.equal(state.phase, 'running');
  assert.equal(state.lastExit?.signal, 'SIGKILL');
  assert.equal(state.lastExit?.code, null);
});

it('a crash loop is restarted with growing delays, capped, and counted', async (t) => {
  const { stateFile } = await supervise(t, 'process.exit(3)', { minBackoffMs: 50, maxBackoffMs: 400 });
  const seen: number[] = [];
  const state = await waitFor(
    async () => {
      const s = await readSupervisionState(stateFile);
      if (s?.phase === 'backoff' && s.restartAt && s.lastExit) {
        const delay = Date.parse(s.restartAt) - Date.parse(s.lastExit.at);
        if (seen.at(-1) !== delay) seen.push(delay);
      }
      return s && s.restarts >= 6 ? s : undefined;
    },
    { description: 'six restarts', timeoutMs: 15_000, intervalMs: 10 },
  );
  assert.equal(state.lastExit?.code, 3);
  assert.ok(seen.length >= 3, `delays seen: ${seen.join(', ')}`);
  assert.ok(
    seen.every((d) => d >= 45 && d <= 405),
    `every delay within [min, max]: ${seen.join(', ')}`,
  );
  assert.ok(seen.includes(400) || seen.some((d) => d > 100), `delays grow: ${seen.join(', ')}`);
});

it('SIGTERM to the supervisor stops the component, then the supervisor, and removes the pid file', async (t) => {
  const { sup, pidFile, stateFile } = await supervise(t, idle);
  const child = await waitFor(() => pidIn(pidFile), { description: 'the start', timeoutMs: 10_000 });
  sup.child.kill('SIGTERM');
  const exit = await sup.exited;
  assert.equal(exit.code, 0);
  assert.equal(alive(child), false, 'the component is gone');
  assert.equal(await pidIn(pidFile), undefined);
  const state = await readSupervisionState(stateFile);
  assert.equal(state?.phase, 'stopped');
  assert.equal(state?.restarts, 0, 'a stop asked for is not a restart');
  assert.equal(state?.lastExit?.signal, 'SIGTERM');
});

it('a component that ignores SIGTERM is killed after the grace period', async (t) => {
  const stubborn = (dir: string) =>
    `process.on('SIGTERM', () => {}); require('node:fs').writeFileSync(${JSON.stringify(join(dir, 'ready'))}, 'y'); ${idle}`;
  const { sup, pidFile, dir } = await supervise(t, stubborn, { stopGraceMs: 300 });
  const child = await waitFor(() => pidIn(pidFile), { description: 'the start', timeoutMs: 10_000 });
  // The handler must be in place before the signal: the component says so in a file.
  await waitFor(async () => (await readFile(join(dir, 'ready'), 'utf8').catch(() => '')) === 'y', {
    description: 'the component to ignore SIGTERM',
    timeoutMs: 10_000,
  });
  const started = Date.now();
  sup.child.kill('SIGTERM');
  const exit = await sup.exited;
  assert.equal(exit.code, 0);
  assert.equal(alive(child), false);
  assert.ok(Date.now() - started >= 250, 'it had its grace period');
});

it('a bad spec exits 2 with one line naming the file, and starts nothing', async (t) => {
  const dir = await tempDirFor(t, 'sf-supervise-bad');
  const specFile = join(dir, 'spec.json');
  await writeFile(specFile, JSON.stringify({ name: 'x', argv: ['relative'], pidFile: 'rel', stateFile: '/tmp/x' }));
  const sup = spawnWatched(process.execPath, [superviseMain, '--spec', specFile]);
  const exit = await sup.exited;
  assert.equal(exit.code, 2);
  assert.match(sup.stderr(), new RegExp(`${specFile}: .*pidFile`));
});
