import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import {
  type AssignmentRecord,
  assignmentCodec,
  type Etcd3,
  type InstanceSecret,
  PrefixMirror,
  type ReplicaStatus,
  readRecord,
  statusCodec,
  waitFor,
} from '@service-foundry/core';
import { silentLogger, startTestEtcd, type TestEtcd, uniqueId, uniqueKeyspace } from '@service-foundry/test-support';
import { containerState, docker, removeClusterResources, volumeExists } from '@service-foundry/test-support/docker';
import { replicaResourceName } from '../src/index.js';
import { ensureTestImage, putSecret, startTestAgent, type TestService, testPage, writeTestCatalog } from './helpers.js';
import { runtime } from './replication-helpers.js';

describe('replica lifecycle with a real container', () => {
  let etcd: TestEtcd;
  let client: Etcd3;
  let service: TestService;

  before(async () => {
    etcd = await startTestEtcd();
    client = etcd.client;
    service = await writeTestCatalog(await ensureTestImage());
  });
  after(async () => {
    await etcd.stop();
    await rm(service.catalogDir, { recursive: true, force: true });
  });

  test('running → failed when killed → restarted → removed with its volume and assignment', async (t) => {
    const keys = uniqueKeyspace();
    const node = uniqueId('life');
    const clusterId = uniqueId('cl');
    const instanceId = uniqueId('inst');
    const address = '127.0.0.1';
    const agent = await startTestAgent(etcd.endpoint, keys, {
      node,
      address,
      reconcileIntervalMs: 500,
      catalogDir: service.catalogDir,
      clusterId,
    });
    // Every state the status key goes through, in order, so short-lived states are not missed.
    const seen: (ReplicaStatus | undefined)[] = [];
    const history: string[] = [];
    const statusMirror = new PrefixMirror(client, statusCodec, keys.instanceStatuses(instanceId), silentLogger());
    statusMirror.on('change', (changes) => {
      for (const change of changes) {
        seen.push(change.current?.value);
        history.push(change.current?.value.state ?? 'deleted');
      }
    });
    await statusMirror.start();
    t.after(async () => {
      await statusMirror.close();
      await agent.stop();
      await removeClusterResources(clusterId);
    });

    const secret: InstanceSecret = { adminUser: 'admin', adminPassword: 'correct horse battery staple' };
    const assignment: AssignmentRecord = {
      instanceId,
      ordinal: 0,
      serviceName: service.name,
      planName: 'tiny',
      resources: { cpuMillis: 250, memoryMb: 64, diskMb: 16 },
      desired: 'running',
    };
    const assignmentKey = keys.assignment(node, instanceId, 0);
    // Assignment first: the agent must wait for the secret rather than fail.
    await client.put(assignmentKey).value(JSON.stringify(assignment)).exec();
    const waiting = await waitFor(() => readRecord(client, statusCodec, keys.status(instanceId, 0)), {
      description: 'a status while the secret is missing',
    });
    assert.equal(waiting.value.state, 'creating');
    assert.match(waiting.value.message, /secret/);
    await putSecret(client, keys, instanceId, secret);

    const running = await waitFor(
      async () => {
        const status = await readRecord(client, statusCodec, keys.status(instanceId, 0));
        return status?.value.state === 'running' ? status.value : undefined;
      },
      { description: 'status running', timeoutMs: 30_000 },
    );
    assert.ok(history.includes('starting'), `went through starting: ${history.join(',')}`);
    assert.equal(running.host, address);
    assert.equal(running.node, node);
    assert.ok(running.port && running.port > 0);

    const response = await fetch(`http://${running.host}:${running.port}/`);
    assert.equal(response.status, 200);
    assert.equal(await response.text(), testPage);

    const name = replicaResourceName(node, { instanceId, ordinal: 0 });
    const info = await containerState(name);
    assert.ok(info, 'container exists under its replica name');
    assert.equal(info.Id, running.containerId);
    const expectedLabels = {
      'sf.cluster': clusterId,
      'sf.node': node,
      'sf.instance': instanceId,
      'sf.ordinal': '0',
      'sf.service': service.name,
    };
    for (const [label, value] of Object.entries(expectedLabels)) assert.equal(info.Config.Labels[label], value, label);
    assert.equal(info.HostConfig.Memory, 64 * 1024 * 1024);
    assert.equal(info.HostConfig.NanoCpus, 250_000_000);
    assert.equal(info.HostConfig.RestartPolicy?.Name, 'no');
    assert.equal((info.Config as { StopSignal?: string }).StopSignal, 'SIGTERM');
    assert.deepEqual(info.HostConfig.PortBindings?.['8080/tcp'], [{ HostIp: address, HostPort: '' }]);
    assert.equal(info.HostConfig.PidsLimit, 20 * 2 + 64, "room for the plan's connections, no more");
    // The password reaches the container as a file of its own user, in no variable.
    assert.ok(info.Config.Env.includes(`${service.adminPasswordFileEnv}=${service.secretsDir}/admin-password`));
    assert.ok(info.Config.Env.includes('SF_MAX_CONNECTIONS=20'), "the plan's connection limit");
    assert.ok(!JSON.stringify([info.Config, info.HostConfig, info.Args]).includes(secret.adminPassword));
    const file = await runtime.exec(info.Id, ['/bin/busybox', 'cat', `${service.secretsDir}/admin-password`], 5000);
    assert.equal(file.stdout, secret.adminPassword);
    const mode = await runtime.exec(info.Id, ['/bin/busybox', 'ls', '-ln', service.secretsDir], 5000);
    assert.match(mode.stdout, /^-r-------- +1 +0 +0 .* admin-password$/m);
    assert.ok(info.Config.Env.includes('GREETING=hi'), 'catalog env passed on');
    const mount = info.Mounts.find((m) => m.Destination === service.volumePath);
    assert.equal(mount?.Name, name, 'volume named like the container');
    const volume = await docker.getVolume(name).inspect();
    assert.equal(volume.Labels?.['sf.instance'], instanceId);

    // A crash is reported with its exit code, then the same container comes back.
    await docker.getContainer(info.Id).kill();
    const failed = await waitFor(() => seen.find((status) => status?.state === 'failed'), {
      description: 'status failed after docker kill',
      timeoutMs: 15_000,
    });
    assert.match(failed.message, /^container exited with code 137\b/);
    assert.equal(failed.containerId, info.Id);
    await waitFor(
      async () => {
        const status = await readRecord(client, statusCodec, keys.status(instanceId, 0));
        return history.lastIndexOf('running') > history.indexOf('failed') && status?.value.state === 'running';
      },
      { description: 'running again after the crash', timeoutMs: 30_000 },
    );
    const restarted = await containerState(name);
    assert.equal(restarted?.Id, info.Id, 'the existing container was started again, not replaced');

    // Removal: status removing, then container, volume, status and assignment all gone.
    const current = await readRecord(client, assignmentCodec, assignmentKey);
    assert.ok(current);
    await client
      .put(assignmentKey)
      .value(JSON.stringify({ ...assignment, desired: 'removed' }))
      .exec();
    await waitFor(async () => (await readRecord(client, assignmentCodec, assignmentKey)) === undefined, {
      description: 'assignment deleted by the agent',
      timeoutMs: 45_000,
    });
    assert.ok(history.includes('removing'), `went through removing: ${history.join(',')}`);
    assert.equal(await readRecord(client, statusCodec, keys.status(instanceId, 0)), undefined, 'status deleted');
    assert.equal(await containerState(name), undefined, 'container removed');
    assert.equal(await volumeExists(name), false, 'volume removed');
  });

  test('a missing image gives a failed status that says how to build it', async (t) => {
    const missing = `service-foundry-test/missing:${uniqueId('x')}`;
    const catalog = await writeTestCatalog(missing);
    const keys = uniqueKeyspace();
    const node = uniqueId('noimg');
    const clusterId = uniqueId('cl');
    const agent = await startTestAgent(etcd.endpoint, keys, { node, catalogDir: catalog.catalogDir, clusterId });
    t.after(async () => {
      await agent.stop();
      await removeClusterResources(clusterId);
      await rm(catalog.catalogDir, { recursive: true, force: true });
    });
    const assignment: AssignmentRecord = {
      instanceId: 'i1',
      ordinal: 2,
      serviceName: catalog.name,
      planName: 'tiny',
      resources: { cpuMillis: 100, memoryMb: 32, diskMb: 8 },
      desired: 'running',
    };
    await putSecret(client, keys, 'i1', { adminUser: 'a', adminPassword: 'b' });
    await client
      .put(keys.assignment(node, 'i1', 2))
      .value(JSON.stringify(assignment))
      .exec();
    const status = await waitFor(
      async () => {
        const s = await readRecord(client, statusCodec, keys.status('i1', 2));
        return s?.value.state === 'failed' ? s.value : undefined;
      },
      { description: 'failed status for a missing image' },
    );
    assert.equal(status.message, `image ${missing} not found: run \`sf images build\``);
    assert.equal(await volumeExists(replicaResourceName(node, { instanceId: 'i1', ordinal: 2 })), false);
  });
});
