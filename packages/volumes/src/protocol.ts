/**
 * Names and versions of the volume transfer protocol, shared by the sender, the receiver,
 * the HTTP server and the clients. docs/volumes.md describes the protocol in full.
 */

/** Version tag of a manifest document. */
export const manifestFormat = 'sf-volume-manifest/1';

/** Version tag of a snapshot stream (its header control entry carries it). */
export const snapshotFormat = 'sf-volume-snapshot/1';

/**
 * Pax record marking the stream's two control entries (`header` first, `trailer` last).
 * Volume entries never carry it, so a file in the volume can have any name.
 */
export const controlPaxKey = 'SF.control';

/**
 * Pax records of every volume entry. `mtime`, `uid` and `gid` are the standard ones (ustar
 * holds whole seconds and small ids; GNU tar honours these too); ustar's mode field cannot
 * say 0 through tar-stream, hence `SF.mode` (octal).
 */
export const paxKeys = { mtime: 'mtime', uid: 'uid', gid: 'gid', mode: 'SF.mode' } as const;

/** Milliseconds as a pax time (`seconds.mmm`). */
export function paxTimeFromMs(ms: number): string {
  const sign = ms < 0 ? '-' : '';
  const abs = Math.abs(ms);
  return `${sign}${Math.floor(abs / 1000)}.${String(abs % 1000).padStart(3, '0')}`;
}

/** Milliseconds from a pax time, or undefined when it is not one (sub-millisecond digits are rounded). */
export function msFromPaxTime(text: string): number | undefined {
  const match = /^(-?)([0-9]{1,15})(?:\.([0-9]{1,9}))?$/.exec(text);
  if (!match) return undefined;
  const fraction = (match[3] ?? '').padEnd(9, '0');
  const ms = Number(match[2]) * 1000 + Math.round(Number(fraction) / 1e6);
  return match[1] === '-' ? -ms : ms;
}

/** Request and trailer header names (lower case, as node:http presents them). */
export const headerNames = {
  timestamp: 'x-sf-timestamp',
  nonce: 'x-sf-nonce',
  signature: 'x-sf-signature',
  /**
   * Trailer: CRC-32 (8 hex digits) of every body byte, or `none` when the receiver asked
   * for `check=manifest` (this version always does; receivers before it check the CRC).
   */
  bodyChecksum: 'x-sf-body-crc32',
  /**
   * Trailer: HMAC over the request's nonce, the body checksum trailer and the sha256 of
   * both control entries. The trailer control entry holds the manifest, which holds every
   * file's sha256, and the receiver checks every entry and byte it applies against it, so
   * this authenticates the whole copy without a second pass over the body.
   */
  bodySignature: 'x-sf-body-signature',
  /** Response header of a snapshot: the base manifest id the delta applies to, or `none`. */
  base: 'x-sf-base',
} as const;

/**
 * `check=manifest` in a snapshot request: the receiver verifies the copy against the signed
 * manifest alone and needs no CRC of the body, which costs each end ~0.4 CPU-s per GiB.
 */
export const manifestCheck = 'manifest';

/** Prefix of every signed string, so a signature can never be replayed against another protocol. */
export const signaturePrefix = 'sf-volumes-v1';

/** Volume names: what Docker accepts, bounded. */
const volumeNamePattern = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$/;

/** Manifest ids are sha256 hex digests. */
const manifestIdPattern = /^[0-9a-f]{64}$/;

export function isVolumeName(value: string): boolean {
  return volumeNamePattern.test(value);
}

export function isManifestId(value: string): boolean {
  return manifestIdPattern.test(value);
}
