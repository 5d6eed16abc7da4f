import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, open } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ProcessError } from './errors.js';
import { freePort } from './net.js';
import { waitFor } from './wait.js';

export interface EtcdProcessOptions {
  /** Data directory; created when missing. */
  dataDir: string;
  /** @default 'etcd' (from PATH) */
  binary?: string;
  /** @default a free loopback port */
  clientPort?: number;
  /** @default a free loopback port */
  peerPort?: number;
  /** File that receives etcd's output. @default `<dataDir>/etcd.log` */
  logFile?: string;
  /** Keep running after this process exits (for `sf up`). @default false */
  detached?: boolean;
  /** @default 15_000 */
  startTimeoutMs?: number;
}

export interface EtcdProcess {
  endpoint: string;
  pid: number;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** Starts a one-member etcd on loopback and waits until it answers `/health`. */
export async function startEtcd(options: EtcdProcessOptions): Promise<EtcdProcess> {
  await mkdir(options.dataDir, { recursive: true, mode: 0o700 });
  const clientPort = options.clientPort ?? (await freePort());
  const peerPort = options.peerPort ?? (await freePort());
  const endpoint = `http://127.0.0.1:${clientPort}`;
  const logFile = options.logFile ?? join(options.dataDir, 'etcd.log');
  await mkdir(dirname(logFile), { recursive: true, mode: 0o700 });
  const log = await open(logFile, 'a');
  const child = spawn(
    options.binary ?? 'etcd',
    [
      '--name',
      'sf',
      '--data-dir',
      options.dataDir,
      '--listen-client-urls',
      endpoint,
      '--advertise-client-urls',
      endpoint,
      '--listen-peer-urls',
      `http://127.0.0.1:${peerPort}`,
      '--initial-advertise-peer-urls',
      `http://127.0.0.1:${peerPort}`,
      '--initial-cluster',
      `sf=http://127.0.0.1:${peerPort}`,
      '--auto-compaction-retention',
      '1',
    ],
    { stdio: ['ignore', log.fd, log.fd], detached: options.detached ?? false },
  );
  await log.close();
  let exited: ProcessError | undefined;
  child.once('exit', (code) => {
    exited = new ProcessError(`etcd exited with code ${code}`, code);
  });
  if (options.detached) child.unref();
  try {
    await waitFor(
      async () => {
        if (exited) throw exited;
        const res = await fetch(`${endpoint}/health`);
        return res.ok && ((await res.json()) as { health?: string }).health === 'true';
      },
      { description: `etcd at ${endpoint}`, timeoutMs: options.startTimeoutMs ?? 15_000, intervalMs: 50 },
    );
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  const pid = child.pid ?? 0;
  return {
    endpoint,
    pid,
    child,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const done = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await done;
    },
  };
}
