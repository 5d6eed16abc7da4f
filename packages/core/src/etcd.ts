import { readFileSync } from 'node:fs';
import { InterceptingCall, type Interceptor } from '@grpc/grpc-js';
import { ExponentialBackoff, handleWhen, retry } from 'cockatiel';
import { Etcd3, type IOptions, isRecoverableError } from 'etcd3';
import type { EtcdTlsFiles } from './component-config.js';
import { InvalidConfigError } from './errors.js';
import { MemberHealth } from './etcd-member-health.js';
import { preferAnsweringMembers } from './etcd-member-order.js';

export { Etcd3, EtcdPermissionDeniedError, type Watcher } from 'etcd3';

export interface EtcdConnectOptions {
  /** Client URLs, e.g. `["https://10.0.0.1:2379"]`. */
  endpoints: readonly string[];
  /**
   * Client certificate (its CN is the etcd user: RBAC decides what it may touch) and the
   * CA that signed etcd's server certificate. Required for `https://` endpoints.
   * @default undefined (plain `http://`, for tests against a throw-away etcd only)
   */
  tls?: EtcdTlsFiles | undefined;
  /**
   * Deadline of each request (not of watch or keepalive streams). A member cut off by a
   * network that drops packets leaves a request waiting on TCP for minutes; at its deadline
   * it fails and the client's retry goes to another member. gRPC keepalive does not end
   * such a request sooner: once the connection is gone, a call waits for a new one ("LB
   * pick") until its deadline. In `sf chaos` power losses, an agent's status write sent to
   * the member just powered off took 6.6 s with 5 s here, and the failover waited on it.
   * Lease renewals (1 s) already give up sooner than this; a live member answers in ms.
   * @default 2000
   */
  requestTimeoutMs?: number;
  /**
   * gRPC keepalive: a ping every `keepaliveMs` on a connection with calls open, and the
   * connection is dropped when one goes unanswered for as long. Without it a watch on a
   * member that vanished (its host lost power, its link cut) waits in silence for TCP,
   * minutes. etcd refuses pings more frequent than its `--grpc-keepalive-min-time`
   * (default 5 s) by closing the connection: set this only as low as the members allow
   * (`sf up` starts its own with 500 ms and gives components 1000 ms).
   * @default undefined (no pings)
   */
  keepaliveMs?: number | undefined;
}

/**
 * Every call asks for a member that has a raft leader (etcd's `hasleader` metadata). A
 * member cut off from the others' majority would otherwise answer watches with silence
 * and keep reads waiting; with it, the member refuses at once ("no leader") and cancels
 * its watches, and the client goes on with another member.
 */
const requireLeader: Interceptor = (options, nextCall) =>
  new InterceptingCall(nextCall(options), {
    start(metadata, listener, next) {
      metadata.set('hasleader', 'true');
      next(metadata, listener);
    },
  });

function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new InvalidConfigError('etcd TLS', [`${what} ${path}: ${(error as NodeJS.ErrnoException).code ?? error}`]);
  }
}

function credentials(tls: EtcdTlsFiles): NonNullable<IOptions['credentials']> {
  return {
    rootCertificate: readPem(tls.caFile, 'CA file'),
    certChain: readPem(tls.certFile, 'certificate file'),
    privateKey: readPem(tls.keyFile, 'key file'),
  };
}

function channelOptions(options: EtcdConnectOptions): NonNullable<IOptions['grpcOptions']> {
  const keepalive = options.keepaliveMs;
  return {
    // etcd3 hands these to each gRPC service client, which takes `interceptors` from them.
    interceptors: [requireLeader],
    // Endpoints are usually IP addresses; the server certificate is checked against this
    // DNS name instead (an IP is not a valid TLS server name).
    ...(options.tls?.serverName ? { 'grpc.ssl_target_name_override': options.tls.serverName } : {}),
    ...(keepalive ? { 'grpc.keepalive_time_ms': keepalive, 'grpc.keepalive_timeout_ms': keepalive } : {}),
  } as NonNullable<IOptions['grpcOptions']>;
}

export function connectEtcd(options: EtcdConnectOptions): Etcd3 {
  const secure = options.endpoints.some((e) => e.startsWith('https://'));
  if (secure && !options.tls) {
    throw new InvalidConfigError('etcd connection', ['https:// endpoints need etcdTls (CA, certificate, key files)']);
  }
  if (options.tls && !options.endpoints.every((e) => e.startsWith('https://'))) {
    throw new InvalidConfigError('etcd connection', ['with etcdTls every endpoint must be https://']);
  }
  const requestTimeoutMs = options.requestTimeoutMs ?? 2000;
  const client = new Etcd3({
    hosts: [...options.endpoints],
    ...(options.tls ? { credentials: credentials(options.tls) } : {}),
    grpcOptions: channelOptions(options),
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: new Date(Date.now() + requestTimeoutMs) }),
    faultHandling: {
      // A request that fails to reach etcd is tried on the next member, three tries in all;
      // then the failure reaches our own loops, which decide what a failed write means.
      global: retry(handleWhen(isRecoverableError), { maxAttempts: 3 }),
      // No circuit breaker: a member that failed or went silent is tried after the others
      // (etcd-member-health.ts says why a breaker's refusals hurt after an election).
      host: () => new MemberHealth(),
      // A lost watch stream is opened again after this backoff. etcd3's default grows to
      // 30 s: after an 8 s etcd outage every watch stayed blind for up to 4.3 s more, while
      // requests went through at once. Opening a stream costs one call: try every second.
      // (etcd3 types this as a backoff and calls next() for the first delay: the zero one.)
      watchBackoff: new ExponentialBackoff({ initialDelay: 50, maxDelay: 1000 }).next(),
    },
  });
  preferAnsweringMembers(client);
  return client;
}

/** The JSON text of a record, as every writer stores it. */
export function json(value: unknown): string {
  return JSON.stringify(value);
}
