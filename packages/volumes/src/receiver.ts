import { isSfError } from '@service-foundry/core';
import type { BodyProof } from './body-check.js';
import type { TransferResult } from './client.js';
import type { TransferConfig } from './config.js';
import { VolumeTransferError } from './errors.js';
import type { Manifest } from './manifest.js';
import { megabytesPerSecond, type ProgressMeter } from './progress.js';
import { SnapshotIntake } from './snapshot-intake.js';
import type { WorkDir } from './work-dir.js';

export interface ReceiveOptions {
  volume: string;
  work: WorkDir;
  /** The manifest of the current copy that was offered as a base (a delta may apply to it). */
  offeredBase: Manifest | undefined;
  /**
   * `staging` already holds the hard-link copy of `offeredBase` (pullSnapshot builds it
   * while the peer prepares its stream). @default false
   */
  baseStaged?: boolean;
  config: Pick<TransferConfig, 'limits' | 'fsync' | 'preserveOwnership'>;
  progress?: ProgressMeter;
  /**
   * Called once the whole body was read and the staged copy verified, before the swap,
   * with what the body signature covers of the stream (the sender's checksum trailer is
   * the caller's to add): throws when the body's signature does not match.
   */
  verifyBody?: (proof: Omit<BodyProof, 'crc32'> & { bytes: number }) => void | Promise<void>;
}

export interface ReceiveResult {
  manifest: Manifest;
  mode: 'full' | 'delta';
  base: string | null;
  /** Volume entries in the stream, files among them, and their content bytes. */
  entries: number;
  files: number;
  bytes: number;
  deleted: number;
  /** Body bytes read (tar framing, control entries and content). */
  wireBytes: number;
}

/** What a pull or local copy reports, from what the receiver took in. */
export function receivedResult(volume: string, result: ReceiveResult, startedAt: number): TransferResult {
  const durationMs = Date.now() - startedAt;
  return {
    volume,
    mode: result.mode,
    base: result.base,
    manifestId: result.manifest.id,
    wireBytes: result.wireBytes,
    bytes: result.bytes,
    files: result.files,
    entries: result.entries,
    deleted: result.deleted,
    durationMs,
    mbPerSecond: megabytesPerSecond(result.bytes, durationMs),
  };
}

/**
 * Receives a snapshot stream into a staging copy and swaps it in only when everything
 * checked out (SnapshotIntake): every entry, the trailer's manifest, the stream against
 * the manifest, the staged tree against the manifest, and the body's signature
 * (verifyBody). Any failure leaves the current copy untouched and removes the staging
 * copy. The work folder must have been prepared (prepareWorkDir) under the volume's lock.
 * A pull over the network feeds the intake from its socket directly (snapshot-request.ts);
 * this is for a body that is a stream (a local copy, a backup).
 */
export async function receiveSnapshot(body: AsyncIterable<Buffer>, options: ReceiveOptions): Promise<ReceiveResult> {
  const intake = new SnapshotIntake(options);
  try {
    for await (const chunk of readBody(body)) {
      if (!intake.push(chunk)) await intake.room();
    }
  } catch (error) {
    await intake.abort(error);
    throw error;
  }
  return intake.finish();
}

/** A broken connection or source is reported as such, not as a malformed stream. */
async function* readBody(body: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  const iterator = body[Symbol.asyncIterator]();
  for (;;) {
    let next: IteratorResult<Buffer>;
    try {
      next = await iterator.next();
    } catch (error) {
      if (isSfError(error)) throw error;
      const message = error instanceof Error ? error.message : String(error);
      throw new VolumeTransferError(`the connection broke during the transfer: ${message}`, undefined, {
        cause: error,
      });
    }
    if (next.done) return;
    yield next.value;
  }
}
