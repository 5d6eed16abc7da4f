import assert from 'node:assert/strict';
import { mkdir, open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { waitFor } from '@service-foundry/core';
import { tempDirFor } from '@service-foundry/test-support';
import { spawnWatched } from '@service-foundry/test-support/child-output';
import { componentPaths, componentStatus } from '../src/cluster/components.js';
import { StartUpWatch } from '../src/cluster/start-up-watch.js';

const superviseMain = fileURLToPath(new URL('../dist/supervision/supervise-main.js', import.meta.url));

/** A real supervisor of `script`, laid out as `sf up` lays out a component; killed when the test ends. */
async function superviseComponent(
  t: { after(fn: () => Promise<void>): void },
  stateDir: string,
  name: string,
  script: string,
): Promise<void> {
  const paths = componentPaths(stateDir, name);
  await mkdir(join(stateDir, 'run'), { recursive: true });
  await mkdir(join(stateDir, 'config'), { recursive: true });
  await writeFile(
    paths.supervisionSpecFile,
    JSON.stringify({
      name,
      argv: [process.execPath, '-e', script],
      pidFile: paths.pidFile,
      stateFile: paths.supervisionStateFile,
      minBackoffMs: 20,
      maxBackoffMs: 40,
    }),
  );
  const log = await open(join(stateDir, `${name}.supervisor.log`), 'a');
  const sup = spawnWatched(process.execPath, [superviseMain, '--spec', paths.supervisionSpecFile], {
    stdio: ['ignore', log.fd, log.fd],
  });
  await log.close();
  await writeFile(paths.supervisorPidFile, `${sup.child.pid}\n`);
  t.after(async () => {
    // SIGTERM: the supervisor stops its component before it exits.
    sup.child.kill('SIGTERM');
    await sup.exited;
  });
}

/** Crashes (exit 1) the first `crashes` runs, then stays up: a counter file survives the runs. */
function crashesThenRuns(dir: string, crashes: number): string {
  const counter = JSON.stringify(join(dir, 'runs'));
  return `const fs = require('node:fs'); const runs = Number(fs.existsSync(${counter}) ? fs.readFileSync(${counter}, 'utf8') : 0) + 1; fs.writeFileSync(${counter}, String(runs)); if (runs <= ${crashes}) process.exit(1); setInterval(() => {}, 1000);`;
}

it('restarts from before sf up began are not a crash loop: a component that crashed earlier but runs now passes', async (t) => {
  const dir = await tempDirFor(t, 'sf-start-up');
  await superviseComponent(t, dir, 'router-1', crashesThenRuns(dir, 4));
  await waitFor(
    async () => {
      const status = await componentStatus(dir, 'router-1');
      return status.supervision?.restarts === 4 && status.supervision.phase === 'running' && status.pid !== undefined;
    },
    { description: 'four crashes, then a run', timeoutMs: 30_000, intervalMs: 20 },
  );
  const watch = await StartUpWatch.begin(dir, ['router-1']);
  assert.equal(await watch.failure(), undefined);
});

it('a component crash-looping while sf up waits is named, with its restarts and how it last exited', async (t) => {
  const dir = await tempDirFor(t, 'sf-start-up');
  await superviseComponent(t, dir, 'broker-1', 'setInterval(() => {}, 1000)');
  await superviseComponent(t, dir, 'router-2', crashesThenRuns(dir, 1000));
  const watch = await StartUpWatch.begin(dir, ['broker-1', 'router-2']);
  const failure = await waitFor(() => watch.failure(), {
    description: 'the crash loop noticed',
    timeoutMs: 30_000,
    intervalMs: 20,
  });
  assert.equal(failure.name, 'router-2');
  assert.match(failure.reason, /^restarted [3-9]\d* times \(last exit: exit code 1 after \d+\.\d s\)$/);
});

it('a component neither supervised nor running is reported as exited', async (t) => {
  const dir = await tempDirFor(t, 'sf-start-up');
  const watch = await StartUpWatch.begin(dir, ['scheduler-1']);
  assert.deepEqual(await watch.failure(), { name: 'scheduler-1', reason: 'exited' });
});
