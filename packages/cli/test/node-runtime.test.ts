import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { access, chmod, readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { waitFor } from '@service-foundry/core';
import { namespaceProcesses, simAgentPath } from '@service-foundry/fencing';
import { makeTempDir, type TempDir, uniqueId } from '@service-foundry/test-support';
import { ensureBusyboxImage } from '@service-foundry/test-support/docker';
import Docker from 'dockerode';
import { blockReservationDir, reserveBlock } from '../src/cluster/node-addresses.js';
import { NodeRuntime } from '../src/cluster/node-runtime.js';

const run = promisify(execFile);

/** Runs a command inside `netns`, or on this machine when undefined. */
function inNamespace(netns: string | undefined, argv: string[]): string[] {
  return netns ? ['nsenter', `--net=/run/netns/${netns}`, '--', ...argv] : argv;
}

/**
 * Opens a TCP connection to host:port from inside `netns` (or from this machine), as a
 * client on that node would: true once connected; false once it is refused or fails
 * (RST, host unreachable), or once the kernel has retransmitted its SYN without an answer
 * (`ss` shows the socket still in SYN-SENT with a retransmission): the partition dropped it.
 */
async function reachable(netns: string | undefined, host: string, port: number): Promise<boolean> {
  const script = `const s=require('net').connect(${port},'${host}');s.on('connect',()=>process.exit(0));s.on('error',()=>process.exit(1));`;
  const [command, ...args] = inNamespace(netns, [process.execPath, '-e', script]);
  const child = spawn(command as string, args, { stdio: 'ignore' });
  let exitCode: number | null | undefined;
  child.once('exit', (code) => {
    exitCode = code;
  });
  const [ss, ...ssArgs] = inNamespace(netns, [
    'ss',
    '-Htni',
    'state',
    'syn-sent',
    'dst',
    host,
    'dport',
    '=',
    `:${port}`,
  ]);
  try {
    return await waitFor(
      async () => {
        if (exitCode !== undefined) return { connected: exitCode === 0 };
        const { stdout } = await run(ss as string, ssArgs);
        return /retrans:\d+\/[1-9]/.test(stdout) ? { connected: false } : undefined;
      },
      {
        description: `a connection to ${host}:${port} to open, fail or lose its SYN`,
        timeoutMs: 30_000,
        intervalMs: 50,
      },
    ).then((outcome) => outcome.connected);
  } finally {
    child.kill('SIGKILL');
  }
}

/** Alive and not a zombie (a killed child of this test stays one until Node reaps it). */
async function alive(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return stat !== '' && !/^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2));
}

/** Runs bin/fence_sf_sim as the fencing runner does: options on stdin, the answer in the exit code. */
async function fenceSim(options: Record<string, string>): Promise<{ code: number; out: string }> {
  const child = execFile(simAgentPath(), [], { timeout: 120_000 });
  child.stdin?.end(
    Object.entries(options)
      .map(([k, v]) => `${k}=${v}\n`)
      .join(''),
  );
  let out = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    out += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    out += chunk.toString();
  });
  const code = await new Promise<number>((resolve) => child.once('exit', (c) => resolve(c ?? 1)));
  return { code, out };
}

function listen(server: Server, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve((server.address() as { port: number }).port));
  });
}

describe('isolated node runtime: two nodes, each its own network namespace and dockerd', () => {
  let dir: TempDir;
  let runtime: NodeRuntime;
  let block: number;
  let webPort: number;
  // Stand-ins for etcd and another service on this machine's segment address.
  const etcd = createServer((s) => s.end());
  const other = createServer((s) => s.end());
  let etcdPort: number;
  let otherPort: number;
  const agentPort = 7000;
  // A stand-in etcd member inside node B (client and peer port on its address), besides the one on this machine.
  const memberPorts = { clientPort: 7001, peerPort: 7002 };
  const nodeA = 'node-a';
  const nodeB = 'node-b';
  const nsA = () => runtime.node(nodeA).netns;
  const nsB = () => runtime.node(nodeB).netns;
  const addressA = () => runtime.node(nodeA).address;
  const engineA = () => new Docker({ socketPath: runtime.node(nodeA).engine.socket });

  /** Starts the `web` container on node A unless it runs; its published port (new after each start). */
  async function startWeb(): Promise<number> {
    const web = engineA().getContainer('web');
    if (!(await web.inspect()).State.Running) await web.start();
    return Number((await web.inspect()).NetworkSettings.Ports['8080/tcp']?.[0]?.HostPort);
  }

  before(
    async () => {
      dir = await makeTempDir('sf-node-runtime');
      const clusterId = uniqueId('sfrt');
      block = await reserveBlock(dir.path, `${clusterId}-`);
      // etcd's ports are known before the nodes exist; the stand-ins take theirs once the segment is up.
      runtime = new NodeRuntime({
        clusterId,
        stateDir: dir.path,
        block,
        nodes: [{ name: nodeA }, { name: nodeB }],
        etcd: [],
      });
      await runtime.ensureNetwork();
      const host = runtime.addressing.hostAddress;
      etcdPort = await listen(etcd, host);
      otherPort = await listen(other, host);
      runtime = new NodeRuntime({
        ...runtime.spec,
        etcd: [
          { clientPort: etcdPort, peerPort: etcdPort },
          { ...memberPorts, node: nodeB },
        ],
      });
      // The agent's stand-in listens on its node's address, as the agent's volume server does.
      const agentStandIn = (node: string) => ({
        name: `agent-${node}`,
        argv: [
          process.execPath,
          '-e',
          `require('net').createServer((s) => s.end()).listen(${agentPort}, '${runtime.node(node).address}')`,
        ],
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
        pidFile: join(dir.path, 'run', `agent-${node}.pid`),
        logFile: join(dir.path, 'logs', `agent-${node}.log`),
        staleFiles: [],
        volatileDirs: [],
      });
      const memberStandIn = {
        name: 'etcd-b',
        argv: [
          process.execPath,
          '-e',
          `const net = require('net'); for (const port of [${memberPorts.clientPort}, ${memberPorts.peerPort}]) net.createServer((s) => s.end()).listen(port, '${runtime.node(nodeB).address}')`,
        ],
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
        pidFile: join(dir.path, 'run', 'etcd-b.pid'),
        logFile: join(dir.path, 'logs', 'etcd-b.log'),
        staleFiles: [],
        volatileDirs: [],
      };
      for (const node of [nodeA, nodeB]) {
        const member = node === nodeB ? [memberStandIn] : [];
        await runtime.prepareNode(node, [...member, agentStandIn(node)]);
        const booted = await runtime.powerOn(node);
        assert.deepEqual(booted.started, ['dockerd', ...member.map((m) => m.name), `agent-${node}`]);
      }
      const image = await ensureBusyboxImage({
        repo: 'service-foundry-test/web',
        cmd: ['/bin/busybox', 'httpd', '-f', '-p', '8080', '-h', '/www'],
        page: 'served on node-a',
      });
      assert.deepEqual(await runtime.copyImages(nodeA, [image]), [image]);
      assert.deepEqual(await runtime.copyImages(nodeA, [image]), [], 'a tag the node has is not copied again');
      const created = await engineA().createContainer({
        name: 'web',
        Image: image,
        ExposedPorts: { '8080/tcp': {} },
        HostConfig: { PortBindings: { '8080/tcp': [{ HostIp: addressA(), HostPort: '' }] } },
      });
      await created.start();
      webPort = await startWeb();
      assert.ok(webPort > 0);
    },
    { timeout: 300_000 },
  );

  after(
    async () => {
      const leftovers = runtime ? await runtime.teardown({ purge: true }).then(() => runtime.leftovers()) : [];
      etcd.close();
      other.close();
      await dir?.remove();
      assert.deepEqual(leftovers, [], 'no namespace, link, node process or mount is left');
      await assert.rejects(access(join(blockReservationDir, String(block))), 'the address block is given back');
    },
    { timeout: 300_000 },
  );

  it('a port published on node A’s address is reachable from node B’s namespace and from this machine', async () => {
    assert.equal(await reachable(nsB(), addressA(), webPort), true);
    assert.equal(await reachable(undefined, addressA(), webPort), true);
    assert.equal(await reachable(nsA(), runtime.node(nodeB).address, agentPort), true);
    // Nodes reach etcd on this machine's segment address.
    assert.equal(await reachable(nsA(), runtime.addressing.hostAddress, etcdPort), true);
    const state = await runtime.state(nodeA);
    assert.equal(state.power, 'on');
    assert.equal(state.link, 'up');
    assert.deepEqual(state.partitions, []);
    assert.ok(state.dockerd && state.agent && !state.agent.paused);
  });

  it('link down makes the node unreachable from its peers and this machine; link up brings it back', async () => {
    await runtime.linkDown(nodeA);
    try {
      assert.equal((await runtime.state(nodeA)).link, 'down');
      assert.equal(await reachable(nsB(), addressA(), webPort), false);
      assert.equal(await reachable(undefined, addressA(), webPort), false);
      assert.equal(await reachable(nsA(), runtime.addressing.hostAddress, etcdPort), false);
    } finally {
      await runtime.linkUp(nodeA);
    }
    assert.equal((await runtime.state(nodeA)).link, 'up');
    await waitFor(() => reachable(nsB(), addressA(), webPort), {
      description: 'node A reachable again',
      timeoutMs: 30_000,
    });
    assert.equal(await reachable(undefined, addressA(), webPort), true);
  });

  it('isolateFromEtcd cuts only the etcd ports, this machine’s and node B’s member’s; heal restores them', async () => {
    const addressB = runtime.node(nodeB).address;
    await runtime.isolateFromEtcd(nodeA);
    try {
      assert.deepEqual((await runtime.state(nodeA)).partitions, ['etcd']);
      const host = runtime.addressing.hostAddress;
      assert.equal(await reachable(nsA(), host, etcdPort), false, 'node A cannot reach etcd');
      for (const port of [memberPorts.clientPort, memberPorts.peerPort]) {
        assert.equal(await reachable(nsA(), addressB, port), false, `node A cannot reach node B's member (${port})`);
      }
      assert.equal(await reachable(nsA(), addressB, agentPort), true, 'node A still reaches node B otherwise');
      assert.equal(await reachable(nsA(), host, otherPort), true, 'other ports on this machine still answer');
      assert.equal(await reachable(nsB(), addressA(), webPort), true, 'peers still reach node A');
      assert.equal(await reachable(nsB(), host, etcdPort), true, 'node B still reaches etcd');
    } finally {
      await runtime.healEtcd(nodeA);
    }
    assert.deepEqual((await runtime.state(nodeA)).partitions, []);
    assert.equal(await reachable(nsA(), runtime.addressing.hostAddress, etcdPort), true);
    assert.equal(await reachable(nsA(), addressB, memberPorts.clientPort), true);
  });

  it('isolateFromEtcd of the node holding a member cuts that member from everyone else', async () => {
    const addressB = runtime.node(nodeB).address;
    await runtime.isolateFromEtcd(nodeB);
    try {
      for (const port of [memberPorts.clientPort, memberPorts.peerPort]) {
        assert.equal(await reachable(nsA(), addressB, port), false, `node A cannot reach B's member (${port})`);
        assert.equal(await reachable(undefined, addressB, port), false, `this machine cannot reach it (${port})`);
      }
      assert.equal(await reachable(nsA(), addressB, agentPort), true, 'node B answers otherwise');
      assert.equal(await reachable(nsB(), runtime.addressing.hostAddress, etcdPort), false);
    } finally {
      await runtime.healEtcd(nodeB);
    }
    assert.equal(await reachable(undefined, addressB, memberPorts.clientPort), true);
  });

  it('isolateFromPeers cuts node A from node B only; etcd and this machine still reach it', async () => {
    await runtime.isolateFromPeers(nodeA);
    try {
      assert.deepEqual((await runtime.state(nodeA)).partitions, ['peers']);
      assert.equal(await reachable(nsB(), addressA(), webPort), false, 'node B cannot reach node A');
      assert.equal(await reachable(nsA(), runtime.node(nodeB).address, agentPort), false, 'node A cannot reach B');
      assert.equal(await reachable(undefined, addressA(), webPort), true, 'this machine (the router) still reaches A');
      assert.equal(await reachable(nsA(), runtime.addressing.hostAddress, etcdPort), true, 'A still reaches etcd');
      for (const port of [memberPorts.clientPort, memberPorts.peerPort]) {
        assert.equal(await reachable(nsA(), runtime.node(nodeB).address, port), true, `and B's member (${port})`);
      }
    } finally {
      await runtime.healPeers(nodeA);
    }
    assert.equal(await reachable(nsB(), addressA(), webPort), true);
    assert.equal(await reachable(nsA(), runtime.node(nodeB).address, agentPort), true);
  });

  it('pauseAgent stops the agent (SIGSTOP) and resumeAgent continues it', async () => {
    await runtime.pauseAgent(nodeA);
    assert.equal((await runtime.state(nodeA)).agent?.paused, true);
    await runtime.resumeAgent(nodeA);
    assert.equal((await runtime.state(nodeA)).agent?.paused, false);
  });

  it('powerOff leaves no process of the node; powerOn boots it again with its disk (image, container) intact', async () => {
    const before = await namespaceProcesses(nsA());
    assert.ok(before.length >= 4, `dockerd, containerd, a shim, the container, the agent: ${before.join(' ')}`);
    const killed = await runtime.powerOff(nodeA);
    assert.ok(killed >= before.length - 1);
    assert.deepEqual(await namespaceProcesses(nsA()), []);
    for (const pid of before) assert.equal(await alive(pid), false, `process ${pid} of the node is gone`);
    const off = await runtime.state(nodeA);
    assert.equal(off.power, 'off');
    assert.equal(off.dockerd, undefined);
    assert.equal(off.agent, undefined);
    assert.equal(await reachable(undefined, addressA(), webPort), false);
    // Node B did not lose its power.
    assert.equal((await runtime.state(nodeB)).power, 'on');

    const booted = await runtime.powerOn(nodeA);
    assert.deepEqual(booted.started, ['dockerd', `agent-${nodeA}`]);
    const web = await engineA().getContainer('web').inspect();
    assert.equal(web.State.Running, false, 'restart policy no: the container waits for its agent');
    webPort = await startWeb();
    await waitFor(() => reachable(nsB(), addressA(), webPort), {
      description: 'web on node A again',
      timeoutMs: 30_000,
    });
  });

  it('fence_sf_sim with boot_file is node B’s power switch: status, off (every process), on (boots it)', async () => {
    const options = { plug: nodeB, cluster: runtime.spec.clusterId, boot_file: runtime.node(nodeB).bootFile };
    assert.deepEqual(await fenceSim({ ...options, action: 'status' }), { code: 0, out: 'Status: ON\n' });
    const off = await fenceSim({ ...options, action: 'off' });
    assert.equal(off.code, 0, off.out);
    assert.deepEqual(await namespaceProcesses(nsB()), []);
    assert.deepEqual(await fenceSim({ ...options, action: 'status' }), { code: 2, out: 'Status: OFF\n' });
    assert.equal(await reachable(nsA(), runtime.node(nodeB).address, agentPort), false);
    const on = await fenceSim({ ...options, action: 'on' });
    assert.equal(on.code, 0, on.out);
    assert.match(on.out, /Powered ON \(started dockerd, etcd-b, agent-node-b\)/);
    assert.equal((await runtime.state(nodeB)).power, 'on');
    await waitFor(() => reachable(nsA(), runtime.node(nodeB).address, agentPort), {
      description: 'node B’s agent stand-in listening again',
      timeoutMs: 30_000,
    });
    // Another node's boot file, or one anybody could have written, is refused: it names what to run.
    const wrong = await fenceSim({ ...options, plug: nodeA, action: 'status' });
    assert.equal(wrong.code, 1);
    assert.match(wrong.out, /boot_file is node node-b's, not node-a's/);
    await chmod(runtime.node(nodeB).bootFile, 0o666);
    try {
      const refused = await fenceSim({ ...options, action: 'on' });
      assert.equal(refused.code, 1);
      assert.match(refused.out, /boot file refused: .* writable by its group or by everyone/);
    } finally {
      await chmod(runtime.node(nodeB).bootFile, 0o600);
    }
  });
});
