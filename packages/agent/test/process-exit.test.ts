import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { type TestContext, test } from 'node:test';
import { liveProcessStartTime, watchProcess } from '../src/process-exit.js';

const never = new Promise<void>(() => undefined);

function sleeper(t: TestContext) {
  const child = spawn('sleep', ['30'], { stdio: 'ignore' });
  const exited = once(child, 'exit');
  const pid = child.pid;
  assert.ok(pid, 'sleep started');
  t.after(async () => {
    child.kill('SIGKILL');
    await exited;
  });
  return { child, pid, exited };
}

test("a container's process seen in /proc: its exit is noticed within tens of milliseconds", async (t) => {
  const { child, pid, exited } = sleeper(t);
  const watch = await watchProcess(pid);
  assert.ok(watch, 'a live process can be watched');
  // A stop that settles at once: the watch looks at /proc once, sees the process, and says no exit.
  assert.equal(await watch.exited(Promise.resolve()), false, 'no exit while it runs');
  const watching = watch.exited(never);
  const killedAt = Date.now();
  child.kill('SIGTERM');
  assert.equal(await watching, true);
  const noticedAfter = Date.now() - killedAt;
  assert.ok(noticedAfter < 1000, `noticed ${noticedAfter} ms after the kill`);
  await exited;
  assert.equal(await liveProcessStartTime(pid), undefined, 'an exited process has no live start time');
  assert.equal(await watchProcess(pid), undefined, 'an exited process cannot be watched');
});

test('not visible here, or Docker answered first: no early answer, and the caller waits for Docker', async (t) => {
  // Above the kernel's largest pid (4194304): never a visible process.
  assert.equal(await watchProcess(4_194_305), undefined);
  const { pid } = sleeper(t);
  const watch = await watchProcess(pid);
  assert.ok(watch);
  assert.equal(await watch.exited(Promise.resolve()), false, 'settled while the process runs');
  const failed = Promise.reject(new Error('stop failed'));
  failed.catch(() => undefined);
  assert.equal(await watch.exited(failed), false, 'a failed stop');
});
