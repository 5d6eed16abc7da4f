import { isAbsolute, resolve } from 'node:path';
import { InvalidInputError } from '@service-foundry/core';
import type { TransferResult } from './client.js';
import { compileTransferConfig, type TransferLimitsOptions } from './config.js';
import { type ProgressListener, ProgressMeter } from './progress.js';
import { isVolumeName } from './protocol.js';
import { receivedResult, receiveSnapshot } from './receiver.js';
import { streamSnapshot } from './sender.js';
import { StatCache } from './stat-cache.js';
import { withVolumeLock } from './volume-lock.js';
import { prepareWorkDir, workDirFor } from './work-dir.js';

export interface CopyVolumeOptions {
  /** Directory to copy (absolute). */
  from: string;
  /** Directory that receives the copy; created when missing, replaced atomically when complete. */
  into: string;
  /** Name recorded in the stream header (Docker volume name rules). */
  name: string;
  limits?: TransferLimitsOptions;
  /** @default true */
  fsync?: boolean;
  onProgress?: ProgressListener;
}

/**
 * Copies a directory on this host with the same stream, checks and atomic swap as a
 * transfer between agents, without HTTP (e.g. into a backup store). Every file's sha256 is
 * checked against the manifest, so a copy that completes is the tree that was read.
 */
export async function copyVolume(options: CopyVolumeOptions): Promise<TransferResult> {
  const problems: string[] = [];
  if (!isVolumeName(options.name)) problems.push(`name ${JSON.stringify(options.name)} is not a volume name`);
  if (typeof options.from !== 'string' || !isAbsolute(options.from)) problems.push('from must be an absolute path');
  if (typeof options.into !== 'string' || !isAbsolute(options.into)) problems.push('into must be an absolute path');
  if (problems.length > 0) throw new InvalidInputError('invalid volume copy options', problems);
  const from = resolve(options.from);
  const into = resolve(options.into);
  // The secret only signs HTTP requests; a local copy has none to sign.
  const config = compileTransferConfig({
    secret: 'local-copy-without-http',
    ...(options.limits ? { limits: options.limits } : {}),
    ...(options.fsync !== undefined ? { fsync: options.fsync } : {}),
  });
  const startedAt = Date.now();
  return withVolumeLock(into, async () => {
    const work = workDirFor(into);
    await prepareWorkDir(work);
    const progress = new ProgressMeter(options.onProgress);
    // Read buffers are not recycled: the receiver may still hold a chunk after taking the next.
    const { stream, done } = streamSnapshot(from, { volume: options.name, cache: new StatCache() });
    done.catch(() => undefined);
    const body = stream as AsyncIterable<Buffer>;
    try {
      const result = await receiveSnapshot(body, {
        volume: options.name,
        work,
        offeredBase: undefined,
        config,
        progress,
      });
      await done;
      progress.finish();
      return receivedResult(options.name, result, startedAt);
    } finally {
      stream.destroy();
    }
  });
}
