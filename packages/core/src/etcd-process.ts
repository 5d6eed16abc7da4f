import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, open } from 'node:fs/promises';
import { request } from 'node:https';
import { dirname, join } from 'node:path';
import type { EtcdTlsFiles } from './component-config.js';
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
  /**
   * More addresses to serve clients on besides 127.0.0.1 (isolated nodes reach etcd on
   * this machine's address on their segment). Each must be this machine's.
   * @default []
   */
  extraClientHosts?: string[];
  /** File that receives etcd's output. @default `<dataDir>/etcd.log` */
  logFile?: string;
  /** Keep running after this process exits (for `sf up`). @default false */
  detached?: boolean;
  /** @default 15_000 */
  startTimeoutMs?: number;
  /**
   * Serve clients and peers over TLS only, requiring client certificates signed by the CA
   * (`--client-cert-auth`, `--peer-client-cert-auth`). Without it etcd listens in clear,
   * open to every local user: only for throw-away test instances.
   * @default undefined
   */
  tls?: EtcdServerTls;
}

export interface EtcdServerTls {
  caFile: string;
  /** Server (and peer) certificate; its SANs must cover 127.0.0.1 and `client.serverName`. */
  certFile: string;
  keyFile: string;
  /** A client identity used for the health check while etcd starts. */
  client: EtcdTlsFiles;
}

/** GET /health over TLS with a client certificate (the only way in with `--client-cert-auth`). */
function healthOverTls(endpoint: string, tls: EtcdServerTls): Promise<boolean> {
  return new Promise((resolveHealth, reject) => {
    const req = request(
      `${endpoint}/health`,
      {
        ca: readFileSync(tls.caFile),
        cert: readFileSync(tls.client.certFile),
        key: readFileSync(tls.client.keyFile),
        ...(tls.client.serverName ? { servername: tls.client.serverName } : {}),
        timeout: 2000,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          body += chunk;
        });
        res.on('end', () => resolveHealth(res.statusCode === 200 && body.includes('"health":"true"')));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('health check timed out')));
    req.on('error', reject);
    req.end();
  });
}

export interface EtcdProcess {
  endpoint: string;
  pid: number;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** The member name of the one-member etcd `startEtcd` and `sf up` run (a restore must name it). */
export const etcdMemberName = 'sf';

/** A member's peer URL (a snapshot restore writes it into the new data folder). */
export function etcdPeerUrl(peerPort: number, tls: boolean, host = '127.0.0.1'): string {
  return `${tls ? 'https' : 'http'}://${host}:${peerPort}`;
}

/** A one-member etcd's command line and the client endpoint it will answer on. */
export interface EtcdCommand {
  endpoint: string;
  args: string[];
}

/** The members of an etcd cluster, for `--initial-cluster`. */
export interface EtcdPeers {
  /** This member's name. */
  name: string;
  /** Every member, this one included; `host` @default '127.0.0.1' */
  members: ReadonlyArray<{ name: string; peerPort: number; host?: string }>;
  /** `--initial-cluster-token`: unique per cluster, so two clusters' members never join each other. */
  token: string;
  /** `--heartbeat-interval` and `--election-timeout` (etcd's defaults: 100 and 1000 ms). */
  timing?: { heartbeatMs: number; electionTimeoutMs: number };
}

/**
 * Raft timing of members that share this machine (loopback round trips of well under a
 * millisecond): the raft leader's loss stalls lease renewals for about an election, and an
 * agent fences its primaries once no renewal was confirmed for 2.25 s (3 s lease). With
 * etcd's defaults (100/1000 ms) renewals stalled 2.5-3.1 s after a kill -9 of the leader,
 * with these 1.0-2.05 s when etcd3 renewed the lease, 0.6-1.4 s with the agent's own
 * renewals (the agent's lease-renewer.ts; a 3-member etcd, a 3 s lease, 8-10 kills).
 */
export const localEtcdMemberTiming: Readonly<NonNullable<EtcdPeers['timing']>> = Object.freeze({
  heartbeatMs: 50,
  electionTimeoutMs: 500,
});

/**
 * The arguments of an etcd member serving clients on `host` (and `extraClientHosts`): a
 * one-member etcd named `sf`, or, with `peers`, one member of several.
 */
export function etcdArguments(
  options: Pick<EtcdProcessOptions, 'dataDir' | 'extraClientHosts' | 'tls'> & {
    clientPort: number;
    peerPort: number;
    peers?: EtcdPeers;
    /**
     * The address the member serves clients and peers on (an isolated node's own address
     * when the member runs inside that node). @default '127.0.0.1'
     */
    host?: string;
    /**
     * `--grpc-keepalive-min-time`: clients may ping this often (their `keepaliveMs`) to find
     * a vanished member within about two of their intervals. @default etcd's own (5 s)
     */
    keepaliveMinTimeMs?: number;
  },
): EtcdCommand {
  const scheme = options.tls ? 'https' : 'http';
  const host = options.host ?? '127.0.0.1';
  const endpoint = `${scheme}://${host}:${options.clientPort}`;
  const clientUrls = [
    endpoint,
    ...(options.extraClientHosts ?? []).map((h) => `${scheme}://${h}:${options.clientPort}`),
  ].join(',');
  const peerUrl = etcdPeerUrl(options.peerPort, options.tls !== undefined, host);
  const tlsArgs = options.tls
    ? [
        ['--cert-file', options.tls.certFile],
        ['--key-file', options.tls.keyFile],
        ['--trusted-ca-file', options.tls.caFile],
        ['--client-cert-auth'],
        ['--peer-cert-file', options.tls.certFile],
        ['--peer-key-file', options.tls.keyFile],
        ['--peer-trusted-ca-file', options.tls.caFile],
        ['--peer-client-cert-auth'],
      ].flat()
    : [];
  const tlsPeers = options.tls !== undefined;
  const initialCluster = options.peers
    ? options.peers.members.map((m) => `${m.name}=${etcdPeerUrl(m.peerPort, tlsPeers, m.host)}`).join(',')
    : `${etcdMemberName}=${peerUrl}`;
  const timing = options.peers?.timing;
  const clusterArgs = options.peers
    ? [
        ['--initial-cluster-token', options.peers.token, '--initial-cluster-state', 'new'],
        // A member back from a power loss or a partition first asks the others whether it
        // could win before it raises the term (etcd 3.5's default; 3.4 campaigns at once,
        // and fast-forwards its election ticks on boot). Seen in `sf chaos`: a powered-on
        // member rejoined with a stale log, then 2 s without a leader; every node's lease
        // renewals failed and two agents fenced themselves.
        ['--pre-vote=true'],
        timing
          ? [
              ['--heartbeat-interval', String(timing.heartbeatMs)],
              ['--election-timeout', String(timing.electionTimeoutMs)],
            ].flat()
          : [],
      ].flat()
    : [];
  const args = [
    '--name',
    options.peers?.name ?? etcdMemberName,
    '--data-dir',
    options.dataDir,
    '--listen-client-urls',
    clientUrls,
    '--advertise-client-urls',
    clientUrls,
    '--listen-peer-urls',
    peerUrl,
    '--initial-advertise-peer-urls',
    peerUrl,
    '--initial-cluster',
    initialCluster,
    ...clusterArgs,
    '--auto-compaction-retention',
    '1',
    ...(options.keepaliveMinTimeMs === undefined
      ? []
      : ['--grpc-keepalive-min-time', `${options.keepaliveMinTimeMs}ms`]),
    ...tlsArgs,
  ];
  return { endpoint, args };
}

/** Whether etcd at `endpoint` answers `/health` with `true` (over TLS when `tls` is given). */
export async function etcdHealthy(endpoint: string, tls: EtcdServerTls | undefined): Promise<boolean> {
  try {
    if (tls) return await healthOverTls(endpoint, tls);
    const res = await fetch(`${endpoint}/health`);
    return res.ok && ((await res.json()) as { health?: string }).health === 'true';
  } catch {
    return false;
  }
}

/** Starts a one-member etcd on loopback and waits until it answers `/health`. */
export async function startEtcd(options: EtcdProcessOptions): Promise<EtcdProcess> {
  await mkdir(options.dataDir, { recursive: true, mode: 0o700 });
  const clientPort = options.clientPort ?? (await freePort());
  const peerPort = options.peerPort ?? (await freePort());
  const { endpoint, args } = etcdArguments({ ...options, clientPort, peerPort });
  const logFile = options.logFile ?? join(options.dataDir, 'etcd.log');
  await mkdir(dirname(logFile), { recursive: true, mode: 0o700 });
  const log = await open(logFile, 'a');
  const child = spawn(options.binary ?? 'etcd', args, {
    stdio: ['ignore', log.fd, log.fd],
    detached: options.detached ?? false,
  });
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
        return etcdHealthy(endpoint, options.tls);
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
