import { mkdir, rm } from 'node:fs/promises';
import { InvalidInputError, isSfError } from '@service-foundry/core';
import { extract, type Header } from 'tar-stream';
import { type BodyProof, sha256Hex } from './body-check.js';
import type { TransferResult } from './client.js';
import type { TransferConfig } from './config.js';
import { EntryApplier } from './entry-applier.js';
import { asStreamRefusal, type EntryContent, type EntrySource, entryContent } from './entry-content.js';
import { VolumeTransferError } from './errors.js';
import { linkCopy } from './link-copy.js';
import type { Manifest, ManifestEntry } from './manifest.js';
import { rememberManifest } from './manifest-hint.js';
import { megabytesPerSecond, type ProgressMeter } from './progress.js';
import { controlPaxKey, isManifestId, snapshotFormat } from './protocol.js';
import type { SnapshotHeader } from './sender.js';
import { TarFrameGuard } from './tar-guard.js';
import { checkAndComplete } from './trailer-check.js';
import { saveCache, storeManifest, swapIn, type WorkDir } from './work-dir.js';

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

function refuse(problem: string): never {
  throw new InvalidInputError('snapshot stream refused', [problem]);
}

async function readAll(content: EntryContent): Promise<Buffer> {
  const chunks: Buffer[] = [];
  await content.consume((chunk) => {
    chunks.push(chunk);
  });
  return Buffer.concat(chunks);
}

function controlKind(header: Header): string | undefined {
  const pax = header.pax as Record<string, string> | null | undefined;
  return pax?.[controlPaxKey];
}

/** A control entry's JSON document and the sha256 of its bytes (the body signature covers it). */
async function readControl(
  header: Header,
  content: EntryContent,
  max: number,
): Promise<{ value: unknown; sha256: string }> {
  if (header.type !== 'file') refuse('a control entry is not a file');
  if (header.size > max) refuse(`control entry of ${header.size} bytes (limit ${max})`);
  const bytes = await readAll(content);
  try {
    return { value: JSON.parse(bytes.toString('utf8')), sha256: sha256Hex(bytes) };
  } catch {
    return refuse('control entry is not JSON');
  }
}

function parseHeader(raw: unknown, volume: string, offeredBase: string | null): SnapshotHeader {
  const h = raw as Partial<SnapshotHeader> | null;
  if (!h || typeof h !== 'object') refuse('header is not an object');
  if (h.format !== snapshotFormat) refuse(`header format is not ${snapshotFormat}`);
  if (h.volume !== volume) refuse(`stream is for volume ${JSON.stringify(h.volume)}, not ${JSON.stringify(volume)}`);
  if (h.base !== null && (typeof h.base !== 'string' || !isManifestId(h.base)))
    refuse('header base is not a manifest id');
  if (h.base !== null && h.base !== offeredBase) refuse('stream is a delta against a copy this receiver does not hold');
  const p = h.planned;
  const planned = {
    entries: Number(p?.entries) || 0,
    files: Number(p?.files) || 0,
    bytes: Number(p?.bytes) || 0,
  };
  return { format: snapshotFormat, volume, base: h.base ?? null, planned };
}

/** Errors of the tar parser (tar-stream throws plain Errors) are refusals of the stream. */
function asStreamError(error: unknown): never {
  throw asStreamRefusal(error);
}

/**
 * Feeds `body` to `sink` through the checksum and the frame guard, honouring
 * back-pressure. A broken connection is reported as such, not as a malformed stream.
 */
async function feed(
  body: AsyncIterable<Buffer>,
  sink: ReturnType<typeof extract>,
  guard: TarFrameGuard,
  counted: { bytes: number },
): Promise<void> {
  try {
    for await (const chunk of body) {
      counted.bytes += chunk.length;
      guard.push(chunk);
      if (sink.destroyed) return;
      if (!sink.write(chunk)) {
        await new Promise<void>((resolve) => {
          const done = () => {
            sink.off('drain', done);
            sink.off('close', done);
            resolve();
          };
          sink.on('drain', done);
          sink.on('close', done);
        });
      }
      if (sink.destroyed) return;
    }
  } catch (error) {
    if (isSfError(error)) throw error;
    const message = error instanceof Error ? error.message : String(error);
    throw new VolumeTransferError(`the connection broke during the transfer: ${message}`, undefined, { cause: error });
  }
  sink.end(undefined);
}

/** How feeding ended: the first failure is kept so the consumer can report it rather than its echo. */
interface FeedState {
  failure: unknown;
}

/**
 * Receives a snapshot stream into a staging copy and swaps it in only when everything
 * checked out: every entry (EntryApplier), the trailer's manifest (parseManifest, symlink
 * chains), the stream against the manifest (each entry sent matches it; each entry not
 * sent is unchanged from the base), the staged tree against the manifest (verifyTree),
 * and the body's signature (verifyBody). Any failure leaves the current copy
 * untouched and removes the staging copy. The work folder must have been prepared
 * (prepareWorkDir) under the volume's lock.
 */
export async function receiveSnapshot(body: AsyncIterable<Buffer>, options: ReceiveOptions): Promise<ReceiveResult> {
  const { work, config } = options;
  const { limits } = config;
  const guard = new TarFrameGuard(limits);
  // No CRC of the body: every byte applied is checked against the signed manifest.
  const counted = { bytes: 0 };
  // A larger buffer than streamx's 16 KiB default: fewer back-pressure round trips per MB.
  const extractor = extract({ highWaterMark: 4 * 1024 * 1024 });
  const fed: FeedState = { failure: undefined };
  const feeding = feed(body, extractor, guard, counted).catch((error: unknown) => {
    fed.failure = error;
    extractor.destroy(error as Error);
    throw error;
  });
  // Observed here; the error also surfaces through the extractor's iteration below.
  feeding.catch(() => undefined);
  let header: SnapshotHeader | undefined;
  let trailerRaw: unknown;
  const control = { header: '', trailer: '' };
  let base: Manifest | undefined;
  const baseEntries = new Map<string, ManifestEntry>();
  const applier = new EntryApplier({
    staging: work.staging,
    limits,
    preserveOwnership: config.preserveOwnership,
    fsync: config.fsync,
    progress: options.progress,
    baseHash: (path) => baseEntries.get(path)?.sha256,
  });
  try {
    try {
      const entries = extractor[Symbol.asyncIterator]();
      for (;;) {
        const next = await entries.next().catch(asStreamError);
        if (next.done) break;
        const entry = next.value;
        const content = entryContent(entry as unknown as EntrySource);
        const kind = controlKind(entry.header);
        if (trailerRaw !== undefined) refuse('an entry follows the trailer');
        if (!header) {
          if (kind !== 'header') refuse('the stream does not start with its header');
          const doc = await readControl(entry.header, content, 64 * 1024);
          control.header = doc.sha256;
          header = parseHeader(doc.value, options.volume, options.offeredBase?.id ?? null);
          options.progress?.plan(header.planned.bytes, header.planned.files);
          if (header.base !== null && options.offeredBase) {
            base = options.offeredBase;
            for (const e of base.entries) baseEntries.set(e.path, e);
            if (!options.baseStaged) await linkCopy(work.volumeDir, work.staging, base, config.preserveOwnership);
          } else {
            await mkdir(work.staging, { mode: 0o700 });
          }
        } else if (kind === 'trailer') {
          const doc = await readControl(entry.header, content, limits.maxControlBytes);
          control.trailer = doc.sha256;
          trailerRaw = doc.value;
        } else if (kind !== undefined) {
          refuse(`unexpected control entry ${JSON.stringify(kind)}`);
        } else {
          await applier.apply(entry.header, content);
        }
      }
    } catch (error) {
      extractor.destroy(null);
      // The feeder may still wait for body bytes (the caller closes the connection); not
      // awaited. When it failed first (a broken connection), that is the real cause.
      throw fed.failure ?? error;
    }
    await feeding;
    await applier.settle();
    if (!header) refuse('the stream is empty');
    if (trailerRaw === undefined) refuse('the stream ended before its trailer');
    if (!guard.ended) refuse('the stream ended without the end-of-archive marker');
    const result = await checkAndComplete(trailerRaw, {
      work,
      config,
      base,
      baseEntries,
      received: applier.received,
      implicitDirectories: applier.implicitDirectories,
    });
    await options.verifyBody?.({ bytes: counted.bytes, ...control });
    await swapIn(work, config.fsync);
    // Independent files: written at once, they cost one fsync's wait instead of two.
    await Promise.all([saveCache(work, result.cache), storeManifest(work, result.manifest)]);
    rememberManifest(work.volumeDir, result.manifest, true);
    return {
      manifest: result.manifest,
      mode: base ? 'delta' : 'full',
      base: base?.id ?? null,
      entries: applier.received.size,
      files: [...applier.received.values()].filter((e) => e.type === 'file').length,
      bytes: [...applier.received.values()].reduce((sum, e) => sum + e.size, 0),
      deleted: result.deleted,
      wireBytes: counted.bytes,
    };
  } catch (error) {
    await applier.settle().catch(() => undefined);
    await rm(work.staging, { recursive: true, force: true }).catch(() => undefined);
    throw error;
  }
}
