import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { waitFor } from '@service-foundry/core';
import { uniqueId } from '@service-foundry/test-support';
import { ensureBusyboxImage, hostDocker, removeContainer } from '@service-foundry/test-support/docker';
import { applyLimits } from '../src/container-limits.js';
import { DockerRuntime } from '../src/docker-runtime.js';

/**
 * `applyLimits` on a real Docker Engine: a container holding ~80 MB gets more CPU and
 * memory in place (same process, never restarted), is refused a limit below its use, and
 * takes one above it.
 */
describe('container limits changed in place (docker update)', () => {
  const docker = new DockerRuntime('/var/run/docker.sock');
  let id = '';

  before(async () => {
    const image = await ensureBusyboxImage({
      repo: 'service-foundry-test/memory-holder',
      applets: ['sh', 'head', 'tr', 'sleep'],
      // Holds 80 MB in a shell variable, then waits; exits at once on SIGTERM.
      cmd: [
        '/bin/busybox',
        'sh',
        '-c',
        "trap 'exit 0' TERM; x=$(head -c 80000000 /dev/zero | tr '\\0' a); sleep 3600 & wait",
      ],
    });
    const created = await hostDocker.createContainer({
      name: uniqueId('sf-test-limits'),
      Image: image,
      Labels: { 'sf.test': 'container-limits' },
      HostConfig: { Memory: 512 * 1024 * 1024, NanoCpus: 500_000_000 },
    });
    id = created.id;
    await created.start();
    await waitFor(async () => (await docker.memoryInUseMb(id)) >= 70, {
      description: 'the container holds its 80 MB',
      timeoutMs: 30_000,
    });
  });
  after(async () => {
    if (id) await removeContainer(id);
  });

  const inspect = async () => {
    const info = await hostDocker.getContainer(id).inspect();
    return {
      memory: info.HostConfig.Memory,
      cpus: info.HostConfig.NanoCpus,
      startedAt: info.State.StartedAt,
      pid: info.State.Pid,
    };
  };

  it('raises CPU and memory of the running container without restarting it', async () => {
    const before = await inspect();
    const state = await docker.inspectContainer(id);
    assert.deepEqual(state?.limits, { cpuMillis: 500, memoryMb: 512 });
    const outcome = await applyLimits(docker, id, { cpuMillis: 1000, memoryMb: 1024 }, state);
    assert.deepEqual(outcome, { ok: true });
    const afterUpdate = await inspect();
    assert.equal(afterUpdate.memory, 1024 * 1024 * 1024);
    assert.equal(afterUpdate.cpus, 1_000_000_000);
    assert.equal(afterUpdate.pid, before.pid, 'the same process runs on');
    assert.equal(afterUpdate.startedAt, before.startedAt);
    assert.deepEqual((await docker.inspectContainer(id))?.limits, { cpuMillis: 1000, memoryMb: 1024 });
  });

  it('refuses a memory limit the service would not fit in, and changes nothing', async () => {
    const state = await docker.inspectContainer(id);
    const outcome = await applyLimits(docker, id, { cpuMillis: 250, memoryMb: 64 }, state);
    assert.equal(outcome.ok, false);
    assert.match(
      (outcome as { error: string }).error,
      /^limits stay 1000m CPU, 1024 MB memory: the service uses \d+ MB, more than 90% of the 64 MB asked$/,
    );
    assert.deepEqual((await docker.inspectContainer(id))?.limits, { cpuMillis: 1000, memoryMb: 1024 });
    assert.equal((await hostDocker.getContainer(id).inspect()).State.Running, true);
  });

  it('lowers memory the service fits in, and reports a Docker refusal as its reason', async () => {
    const state = await docker.inspectContainer(id);
    assert.deepEqual(await applyLimits(docker, id, { cpuMillis: 250, memoryMb: 256 }, state), { ok: true });
    assert.deepEqual((await docker.inspectContainer(id))?.limits, { cpuMillis: 250, memoryMb: 256 });
    assert.equal((await hostDocker.getContainer(id).inspect()).State.Running, true);
    const gone = await applyLimits(docker, 'sf-no-such-container', { cpuMillis: 250, memoryMb: 256 }, undefined);
    assert.equal(gone.ok, false);
    assert.match(
      (gone as { error: string }).error,
      /^limits not changed to 250m CPU, 256 MB memory: docker update container/,
    );
  });
});
