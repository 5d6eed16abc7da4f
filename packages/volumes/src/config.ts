import { configCompiler } from '@service-foundry/core';

/** Caps on what a receiver accepts from one snapshot stream. */
export interface TransferLimitsOptions {
  /** Sum of the file sizes in the resulting copy, and of the data in one stream. @default 274877906944 (256 GiB) */
  maxTotalBytes?: number;
  /** Entries (files, directories, symlinks) in the resulting copy and in one stream. @default 1000000 */
  maxEntries?: number;
  /** Bytes of a relative path inside the volume. @default 4096 */
  maxPathBytes?: number;
  /** Bytes of one path component. @default 255 */
  maxNameBytes?: number;
  /** Bytes of a symlink's target. @default 4095 */
  maxLinkTargetBytes?: number;
  /** Bytes of a control entry (the header, or the trailer carrying the whole manifest). @default 268435456 (256 MiB) */
  maxControlBytes?: number;
  /** Accept regular files with the setuid or setgid bit. @default false */
  allowSetuidFiles?: boolean;
}

/** ajv's JSONSchemaType<T>, taken from core so this package does not depend on ajv itself. */
type SchemaOf<T> = Parameters<typeof configCompiler<T>>[1];

export interface TransferLimits {
  maxTotalBytes: number;
  maxEntries: number;
  maxPathBytes: number;
  maxNameBytes: number;
  maxLinkTargetBytes: number;
  maxControlBytes: number;
  allowSetuidFiles: boolean;
}

const limitsSchema: SchemaOf<TransferLimits> = {
  type: 'object',
  additionalProperties: false,
  properties: {
    maxTotalBytes: { type: 'integer', minimum: 0, default: 256 * 1024 ** 3 },
    maxEntries: { type: 'integer', minimum: 1, default: 1_000_000 },
    maxPathBytes: { type: 'integer', minimum: 1, maximum: 65536, default: 4096 },
    maxNameBytes: { type: 'integer', minimum: 1, maximum: 4096, default: 255 },
    maxLinkTargetBytes: { type: 'integer', minimum: 1, maximum: 65536, default: 4095 },
    maxControlBytes: { type: 'integer', minimum: 1024, default: 256 * 1024 ** 2 },
    allowSetuidFiles: { type: 'boolean', default: false },
  },
  required: [],
};

/** Settings shared by both ends of a transfer, as they may appear in a JSON config. */
export interface TransferOptions {
  /**
   * Shared secret of the cluster: requests are HMAC-signed with it. At least 16 characters;
   * never logged.
   */
  secret: string;
  /** Caps on incoming streams. @default see {@link TransferLimitsOptions} */
  limits?: TransferLimitsOptions;
  /** How far a request's timestamp may be from the receiver's clock. @default 30000 */
  clockSkewMs?: number;
  /** A connection that moves no byte for this long is abandoned. @default 60000 */
  idleTimeoutMs?: number;
  /** fsync every received file and directory before the copy is swapped in. @default true */
  fsync?: boolean;
  /**
   * Apply the sender's uid and gid to received entries (needs root; Postgres refuses a data
   * directory it does not own). @default true when the process runs as root
   */
  preserveOwnership?: boolean;
}

export interface TransferConfig {
  secret: string;
  limits: TransferLimits;
  clockSkewMs: number;
  idleTimeoutMs: number;
  fsync: boolean;
  preserveOwnership: boolean;
}

const transferSchema: SchemaOf<TransferConfig> = {
  type: 'object',
  additionalProperties: false,
  properties: {
    secret: { type: 'string', minLength: 16, maxLength: 1024 },
    limits: { ...limitsSchema, default: {} as TransferLimits },
    clockSkewMs: { type: 'integer', minimum: 1000, maximum: 600_000, default: 30_000 },
    idleTimeoutMs: { type: 'integer', minimum: 100, default: 60_000 },
    fsync: { type: 'boolean', default: true },
    preserveOwnership: { type: 'boolean', default: process.getuid?.() === 0 },
  },
  required: ['secret'],
};

const compileLimitsOnly = configCompiler<TransferLimits>('volume transfer limits', limitsSchema);
const compileTransfer = configCompiler<TransferConfig>('volume transfer options', transferSchema);

export function compileLimits(input: TransferLimitsOptions | undefined): Readonly<TransferLimits> {
  return compileLimitsOnly(input ?? {});
}

export function compileTransferConfig(input: TransferOptions): Readonly<TransferConfig> {
  return compileTransfer(input);
}
