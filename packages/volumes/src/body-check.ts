import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { crc32 } from 'node:zlib';
import { headerNames } from './protocol.js';

/**
 * Running CRC-32 and length of a body. CRC-32 runs at several GB/s; sha256 would halve
 * throughput. Without `crc` (a receiver that asked `check=manifest`) only the length is
 * kept, and the checksum reads `none`.
 */
export class BodyChecksum {
  #crc = 0;
  bytes = 0;

  constructor(private readonly crc = true) {}

  update(chunk: Buffer): void {
    if (this.crc) this.#crc = crc32(chunk, this.#crc);
    this.bytes += chunk.length;
  }

  hex(): string {
    return this.crc ? (this.#crc >>> 0).toString(16).padStart(8, '0') : 'none';
  }
}

export function sha256Hex(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** What the body signature covers besides the nonce. */
export interface BodyProof {
  /** CRC-32 of the whole body (hex). */
  crc32: string;
  /** sha256 (hex) of the header and trailer control entries' JSON bytes. */
  header: string;
  trailer: string;
}

export interface BodyTrailers {
  crc32: string | undefined;
  signature: string | undefined;
}

export function readBodyTrailers(trailers: IncomingHttpHeaders | NodeJS.Dict<string>): BodyTrailers {
  const checksum = trailers[headerNames.bodyChecksum];
  const signature = trailers[headerNames.bodySignature];
  return {
    crc32: typeof checksum === 'string' ? checksum : undefined,
    signature: typeof signature === 'string' ? signature : undefined,
  };
}

/** The `Trailer` header announcing both trailers. */
export const trailerAnnouncement = `${headerNames.bodyChecksum}, ${headerNames.bodySignature}`;
