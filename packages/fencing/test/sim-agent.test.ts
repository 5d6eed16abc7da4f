import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { silentLogger, spawnWatched, suiteTempDir, uniqueId } from '@service-foundry/test-support';
import { docker, removeContainer } from '@service-foundry/test-support/docker';
import { powerOffAndConfirm, simAgentPath } from '../src/index.js';
import { device, ensureSleepImage, processRuns, runContext, startSleeper } from './helpers.js';

/** Runs bin/fence_sf_sim as Pacemaker would: options on stdin, the answer in the exit code. */
async function sim(options: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const run = spawnWatched(simAgentPath(), [], { stdio: ['pipe', 'pipe', 'pipe'] });
  run.child.stdin?.end(
    Object.entries(options)
      .map(([k, v]) => `${k}=${v}\n`)
      .join(''),
  );
  const { code } = await run.exited;
  return { code, stdout: run.stdout(), stderr: run.stderr() };
}

/**
 * A stand-in for a node's agent process: `sleep`, with its pid file, marked the way `sf up`
 * marks a node's agent (`SF_COMPONENT=agent-<node>`) unless `component` says otherwise.
 */
async function fakeAgent(
  dir: string,
  name: string,
  component = `agent-${name}`,
): Promise<{ child: ChildProcess; pidFile: string; exited: Promise<string | null> }> {
  const child = spawn('sleep', ['300'], { stdio: 'ignore', env: { ...process.env, SF_COMPONENT: component } });
  const exited = new Promise<string | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
  const pidFile = join(dir, `${name}.pid`);
  await writeFile(pidFile, `${child.pid}\n`);
  return { child, pidFile, exited };
}

describe('fence_sf_sim: the one-machine simulation’s fence agent', () => {
  const dir = suiteTempDir('sf-fencing-sim');
  let image: string;
  const cluster = uniqueId('sfsim');
  const containers: string[] = [];
  const agents: ChildProcess[] = [];

  before(async () => {
    image = await ensureSleepImage();
  });
  after(async () => {
    for (const id of containers) await removeContainer(id);
    for (const agent of agents) if (agent.exitCode === null && agent.signalCode === null) agent.kill('SIGKILL');
  });

  async function container(node: string, clusterId = cluster): Promise<string> {
    const id = await startSleeper(image, uniqueId(`sf-sim-${node}`), { 'sf.node': node, 'sf.cluster': clusterId });
    containers.push(id);
    return id;
  }
  async function running(id: string): Promise<{ running: boolean; exitCode: number }> {
    const state = (await docker.getContainer(id).inspect()).State;
    return { running: state.Running, exitCode: state.ExitCode };
  }

  it('answers metadata, monitor and list per protocol', async () => {
    const metadata = await sim({ action: 'metadata' });
    assert.equal(metadata.code, 0);
    assert.match(metadata.stdout, /<resource-agent name="fence_sf_sim"/);
    assert.match(metadata.stdout, /<parameter name="pid_file"/);
    assert.match(metadata.stdout, /<action name="status" \/>/);
    assert.equal((await sim({ action: 'monitor' })).code, 0);
    assert.equal((await sim({ action: 'monitor', docker_socket: join(dir.path, 'no.sock') })).code, 1);

    await container('list-a');
    await container('list-b');
    const list = await sim({ action: 'list', cluster });
    assert.equal(list.code, 0);
    assert.deepEqual(list.stdout.trim().split('\n'), ['list-a,list-a', 'list-b,list-b']);
  });

  it('status ON while the node runs; off kills its agent and containers only; then status OFF', async () => {
    const agent = await fakeAgent(dir.path, 'node-a');
    agents.push(agent.child);
    const mine = await container('node-a');
    const otherNode = await container('node-b');
    const otherCluster = await container('node-a', uniqueId('sfsim-other'));
    const options = { plug: 'node-a', cluster, pid_file: agent.pidFile };

    const before = await sim({ action: 'status', ...options });
    assert.equal(before.code, 0);
    assert.equal(before.stdout.trim(), 'Status: ON');

    const off = await sim({ action: 'off', ...options });
    assert.equal(off.code, 0, off.stderr);
    assert.equal(off.stdout.trim(), 'Success: Powered OFF');
    assert.equal(await agent.exited, 'SIGKILL');
    assert.deepEqual(await running(mine), { running: false, exitCode: 137 });
    assert.equal((await running(otherNode)).running, true, 'another node of the cluster is untouched');
    assert.equal((await running(otherCluster)).running, true, 'the same node name in another cluster is untouched');

    const afterwards = await sim({ action: 'status', ...options });
    assert.equal(afterwards.code, 2);
    assert.equal(afterwards.stdout.trim(), 'Status: OFF');
    assert.equal((await sim({ action: 'off', ...options })).stdout.trim(), 'Success: Already OFF');
    const on = await sim({ action: 'on', ...options });
    assert.equal(on.code, 0);
    assert.equal((await sim({ action: 'status', ...options })).code, 2, '`on` starts nothing');
  });

  it('status ON for a node with only its agent running; a pid reused by another process is left alone', async () => {
    const agent = await fakeAgent(dir.path, 'node-c');
    agents.push(agent.child);
    assert.equal((await sim({ action: 'status', plug: 'node-c', cluster, pid_file: agent.pidFile })).code, 0);

    // The pid file predates the process holding that pid now: not the agent.
    const stranger = await fakeAgent(dir.path, 'node-d');
    agents.push(stranger.child);
    const anHourAgo = new Date(Date.now() - 3600_000);
    await utimes(stranger.pidFile, anHourAgo, anHourAgo);
    const options = { plug: 'node-d', cluster, pid_file: stranger.pidFile };
    assert.equal((await sim({ action: 'status', ...options })).code, 2);
    assert.equal((await sim({ action: 'off', ...options })).code, 0);
    assert.equal(await processRuns(stranger.child.pid as number), true);
  });

  it('never kills a process that is not the node’s agent, whatever the pid file names', async () => {
    // A pid file of something else (sshd, dockerd, another node's agent) given as pid_file.
    const bystander = await fakeAgent(dir.path, 'bystander', 'scheduler');
    agents.push(bystander.child);
    const otherAgent = await fakeAgent(dir.path, 'node-g');
    agents.push(otherAgent.child);
    for (const pidFile of [bystander.pidFile, otherAgent.pidFile]) {
      const options = { plug: 'node-f', cluster, pid_file: pidFile };
      assert.equal((await sim({ action: 'status', ...options })).code, 2, 'not node-f’s agent: OFF');
      assert.equal((await sim({ action: 'off', ...options })).stdout.trim(), 'Success: Already OFF');
    }
    assert.equal(await processRuns(bystander.child.pid as number), true);
    assert.equal(await processRuns(otherAgent.child.pid as number), true);
  });

  it('exits 1, never OFF, when it cannot find out', async () => {
    const noCluster = await sim({ action: 'status', plug: 'node-a' });
    assert.equal(noCluster.code, 1);
    assert.match(noCluster.stderr, /cluster/);
    const noDocker = await sim({ action: 'status', plug: 'node-a', cluster, docker_socket: join(dir.path, 'no.sock') });
    assert.equal(noDocker.code, 1);
    assert.equal((await sim({ action: 'dance', plug: 'node-a', cluster })).code, 1);
  });

  it('fences a simulated node through the device runner by its name', async () => {
    const agent = await fakeAgent(dir.path, 'node-e');
    agents.push(agent.child);
    const id = await container('node-e');
    const outcome = await powerOffAndConfirm(
      1,
      device({ agent: 'fence_sf_sim', options: { plug: 'node-e', cluster, pid_file: agent.pidFile } }),
      runContext(silentLogger(), 'node-e'),
    );
    assert.equal(outcome.ok, true, outcome.reason);
    assert.equal(await agent.exited, 'SIGKILL');
    assert.equal((await running(id)).running, false);
  });
});
