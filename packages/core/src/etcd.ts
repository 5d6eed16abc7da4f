import { readFileSync } from 'node:fs';
import { Etcd3, type IOptions } from 'etcd3';
import type { EtcdTlsFiles } from './component-config.js';
import { InvalidConfigError } from './errors.js';

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
  /** @default 5000 */
  dialTimeoutMs?: number;
}

function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new InvalidConfigError('etcd TLS', [`${what} ${path}: ${(error as NodeJS.ErrnoException).code ?? error}`]);
  }
}

function credentials(tls: EtcdTlsFiles): Pick<IOptions, 'credentials' | 'grpcOptions'> {
  return {
    credentials: {
      rootCertificate: readPem(tls.caFile, 'CA file'),
      certChain: readPem(tls.certFile, 'certificate file'),
      privateKey: readPem(tls.keyFile, 'key file'),
    },
    // Endpoints are usually IP addresses; the server certificate is checked against this
    // DNS name instead (an IP is not a valid TLS server name).
    ...(tls.serverName ? { grpcOptions: { 'grpc.ssl_target_name_override': tls.serverName } } : {}),
  };
}

export function connectEtcd(options: EtcdConnectOptions): Etcd3 {
  const secure = options.endpoints.some((e) => e.startsWith('https://'));
  if (secure && !options.tls) {
    throw new InvalidConfigError('etcd connection', ['https:// endpoints need etcdTls (CA, certificate, key files)']);
  }
  if (options.tls && !options.endpoints.every((e) => e.startsWith('https://'))) {
    throw new InvalidConfigError('etcd connection', ['with etcdTls every endpoint must be https://']);
  }
  return new Etcd3({
    hosts: [...options.endpoints],
    dialTimeout: options.dialTimeoutMs ?? 5000,
    ...(options.tls ? credentials(options.tls) : {}),
    // Failures must surface to our own loops, which decide what a failed write means.
    faultHandling: { global: undefined as never, host: undefined as never },
  });
}

/** The JSON text of a record, as every writer stores it. */
export function json(value: unknown): string {
  return JSON.stringify(value);
}
