/**
 * Config pieces every long-running component shares (etcd endpoints and TLS, keyspace
 * root, catalog folder, secrets key), written once so their rules cannot drift apart.
 * Each component's config schema spreads these properties into its own.
 */

import { defaultCatalogDir } from './catalog.js';

/** Files of an etcd client identity. The certificate's CN is the etcd user name. */
export interface EtcdTlsFiles {
  /** PEM of the CA that signed etcd's server certificate. */
  caFile: string;
  /** PEM client certificate; etcd takes its CN as the user that RBAC checks. */
  certFile: string;
  /** PEM private key of `certFile`; keep it mode 0600. */
  keyFile: string;
  /**
   * DNS name to check etcd's server certificate against when endpoints are IP addresses.
   * @default undefined (the endpoint's host)
   */
  serverName?: string;
}

const absolutePath = { type: 'string', pattern: '^/', minLength: 2, maxLength: 4096 } as const;

export const etcdEndpointsSchema = {
  type: 'array',
  minItems: 1,
  maxItems: 16,
  items: { type: 'string', pattern: '^https?://[^\\s/]+$' },
} as const;

export const etcdTlsSchema = {
  type: 'object',
  nullable: true,
  additionalProperties: false,
  required: ['caFile', 'certFile', 'keyFile'],
  properties: {
    caFile: absolutePath,
    certFile: absolutePath,
    keyFile: absolutePath,
    serverName: { type: 'string', nullable: true, pattern: '^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$' },
  },
} as const;

/**
 * `etcdKeepaliveMs`: the gRPC keepalive of a component's etcd connections (core
 * `connectEtcd`). 0 sends no pings: etcd closes connections that ping more often than its
 * `--grpc-keepalive-min-time` (5 s unless set), so a lower figure needs members told so.
 */
export const etcdKeepaliveMsSchema = { type: 'integer', default: 0, minimum: 0, maximum: 600_000 } as const;

export const keyspaceRootSchema = {
  type: 'string',
  default: '/sf',
  pattern: '^/[A-Za-z0-9/_.-]*[A-Za-z0-9_.-]$',
} as const;

/** Path of the file holding the key that seals secrets stored in etcd (core `SecretBox`). */
export const secretsKeyFileSchema = absolutePath;

/** Folder of the services catalog, `<dir>/<service>/service.json`; defaults to `defaultCatalogDir()`. */
export const catalogDirSchema = { type: 'string', minLength: 1, default: defaultCatalogDir() } as const;
