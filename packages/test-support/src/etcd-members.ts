import { type ChildProcess, spawn } from 'node:child_process';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import {
  connectEtcd,
  type Etcd3,
  etcdArguments,
  etcdHealthy,
  freePort,
  localEtcdMemberTiming,
  waitFor,
} from '@service-foundry/core';
import { uniqueId } from './ids.js';
import { makeTempDir } from './temp-dir.js';

/** Several etcd members on loopback forming one cluster, with `sf up`'s raft timing for local members. */
export interface TestEtcdMembers {
  endpoints: string[];
  /** A client of the fixture's own (every endpoint), closed by `stop()`. */
  client: Etcd3;
  /** The member index (0-based) of the raft leader, as the members report it. */
  leader(): Promise<number>;
  /** `kill -9` of one member; it stays down until `restart`. */
  kill(index: number): void;
  /** SIGSTOP of one member: its connections stay open and nothing answers, as from a host gone dark. */
  pause(index: number): void;
  /** SIGCONT of a paused member. */
  resume(index: number): void;
  /** Starts a killed member again on its data dir and waits until it answers `/health`. */
  restart(index: number): Promise<void>;
  /** Kills every member and removes their data; calling it again does nothing. */
  stop(): Promise<void>;
}

/** Starts `count` clear-text members and waits until each answers `/health`. */
export async function startTestEtcdMembers(count = 3): Promise<TestEtcdMembers> {
  const dir = await makeTempDir('sf-test-etcd-members');
  const token = uniqueId('members');
  const ports = [];
  for (let i = 0; i < count; i++) ports.push({ clientPort: await freePort(), peerPort: await freePort() });
  const members = ports.map((p, i) => ({ name: `m${i + 1}`, peerPort: p.peerPort }));
  const commands = ports.map((p, i) =>
    etcdArguments({
      dataDir: join(dir.path, `m${i + 1}`),
      clientPort: p.clientPort,
      peerPort: p.peerPort,
      peers: { name: `m${i + 1}`, members, token, timing: localEtcdMemberTiming },
      // As `sf up`'s members: clients find a member gone dark by their 1 s keepalive pings.
      keepaliveMinTimeMs: 500,
    }),
  );
  const children: Array<ChildProcess | undefined> = [];
  const launch = async (index: number) => {
    const command = commands[index];
    if (!command) throw new RangeError(`no member ${index}`);
    const log = await open(join(dir.path, `m${index + 1}.log`), 'a');
    children[index] = spawn('etcd', command.args, { stdio: ['ignore', log.fd, log.fd] });
    await log.close();
  };
  const healthy = (index: number) =>
    waitFor(() => etcdHealthy(commands[index]?.endpoint ?? '', undefined), {
      description: `etcd member m${index + 1} healthy`,
      timeoutMs: 20_000,
      intervalMs: 50,
    });
  const killAll = () => {
    for (const child of children)
      if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  try {
    await Promise.all(commands.map((_, i) => launch(i)));
    await Promise.all(commands.map((_, i) => healthy(i)));
  } catch (error) {
    killAll();
    await dir.remove();
    throw error;
  }
  const endpoints = commands.map((c) => c.endpoint);
  const client = connectEtcd({ endpoints });
  let stopped: Promise<void> | undefined;
  return {
    endpoints,
    client,
    leader: async () => {
      const { leader } = await client.maintenance.status();
      const { members: listed } = await client.cluster.memberList({});
      const name = listed.find((m) => m.ID === leader)?.name;
      const index = members.findIndex((m) => m.name === name);
      if (index < 0) throw new Error(`no raft leader among ${members.map((m) => m.name).join(', ')}`);
      return index;
    },
    kill: (index) => {
      children[index]?.kill('SIGKILL');
    },
    pause: (index) => {
      children[index]?.kill('SIGSTOP');
    },
    resume: (index) => {
      children[index]?.kill('SIGCONT');
    },
    restart: async (index) => {
      const child = children[index];
      if (child && child.exitCode === null && child.signalCode === null) {
        await new Promise((resolve) => child.once('exit', resolve));
      }
      await launch(index);
      await healthy(index);
    },
    stop: () => {
      stopped ??= (async () => {
        client.close();
        const exits = children.map((c) =>
          c && c.exitCode === null && c.signalCode === null ? new Promise((r) => c.once('exit', r)) : undefined,
        );
        killAll();
        await Promise.all(exits);
        await dir.remove();
      })();
      return stopped;
    },
  };
}
