import { mkdir, rm } from 'node:fs/promises';
import { InvalidInputError } from '@service-foundry/core';
import { sha256Hex } from './body-check.js';
import { EntryApplier } from './entry-applier.js';
import type { FileSink } from './file-sink.js';
import { linkCopy } from './link-copy.js';
import type { Manifest, ManifestEntry } from './manifest.js';
import { rememberManifest } from './manifest-hint.js';
import { controlPaxKey, isManifestId, snapshotFormat } from './protocol.js';
import type { ReceiveOptions, ReceiveResult } from './receiver.js';
import type { SnapshotHeader } from './sender.js';
import { TarFrameGuard } from './tar-guard.js';
import { type TarHeader, TarReader } from './tar-reader.js';
import { checkAndComplete } from './trailer-check.js';
import { saveCache, storeManifest, swapIn } from './work-dir.js';

function refuse(problem: string): never {
  throw new InvalidInputError('snapshot stream refused', [problem]);
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

/** A control entry (header or trailer JSON) being collected. */
interface Control {
  kind: 'header' | 'trailer';
  chunks: Buffer[];
}

/**
 * The receiving end of one snapshot stream, fed bytes as they arrive (`push`), in pieces
 * of any size, from a buffer the caller reuses: the frame guard and the tar reader look at
 * them where they are, control entries are copied, file content goes to the entry
 * applier (hashed, copied into write batches). `push` throws the first refusal; when it
 * returns false, the caller waits for `room()` before reading more. After the body ended,
 * `finish()` runs every check and swaps the copy in; after a failure, `abort()` removes
 * the staging copy.
 */
export class SnapshotIntake {
  readonly #options: ReceiveOptions;
  readonly #guard: TarFrameGuard;
  readonly #reader: TarReader;
  readonly #applier: EntryApplier;
  readonly #baseEntries = new Map<string, ManifestEntry>();
  readonly #controlHashes = { header: '', trailer: '' };
  #header: SnapshotHeader | undefined;
  #base: Manifest | undefined;
  #trailer: unknown;
  #control: Control | undefined;
  #sink: FileSink | undefined;
  #wireBytes = 0;

  constructor(options: ReceiveOptions) {
    this.#options = options;
    const { config } = options;
    this.#guard = new TarFrameGuard(config.limits);
    this.#applier = new EntryApplier({
      staging: options.work.staging,
      limits: config.limits,
      preserveOwnership: config.preserveOwnership,
      fsync: config.fsync,
      progress: options.progress,
      baseHash: (path) => this.#baseEntries.get(path)?.sha256,
    });
    this.#reader = new TarReader({
      entry: (header) => this.#onEntry(header),
      data: (buf, start, end) => {
        if (this.#control) this.#control.chunks.push(Buffer.from(buf.subarray(start, end)));
        else this.#sink?.write(buf, start, end);
      },
      entryEnd: () => this.#onEntryEnd(),
    });
  }

  /** Takes the next body bytes; false: wait for {@link room} before pushing more. */
  push(buf: Buffer, start = 0, end = buf.length): boolean {
    if (this.#applier.failure !== undefined) throw this.#applier.failure;
    this.#wireBytes += end - start;
    const chunk = start === 0 && end === buf.length ? buf : buf.subarray(start, end);
    this.#guard.push(chunk);
    this.#reader.push(buf, start, end);
    return this.#applier.hasRoom;
  }

  /** Settles when the stream may go on (or has failed: the next push throws). */
  room(): Promise<void> {
    return this.#applier.room();
  }

  #onEntry(header: TarHeader): void {
    const kind = (header.pax as Record<string, string> | null)?.[controlPaxKey];
    if (this.#trailer !== undefined || this.#control?.kind === 'trailer') refuse('an entry follows the trailer');
    if (!this.#header && this.#control?.kind !== 'header') {
      if (kind !== 'header') refuse('the stream does not start with its header');
      this.#startControl('header', header, 64 * 1024);
    } else if (kind === 'trailer') {
      this.#startControl('trailer', header, this.#options.config.limits.maxControlBytes);
    } else if (kind !== undefined) {
      refuse(`unexpected control entry ${JSON.stringify(kind)}`);
    } else {
      this.#sink = this.#applier.begin(header);
    }
  }

  #startControl(kind: Control['kind'], header: TarHeader, max: number): void {
    if (header.type !== 'file') refuse('a control entry is not a file');
    if (header.size > max) refuse(`control entry of ${header.size} bytes (limit ${max})`);
    this.#control = { kind, chunks: [] };
  }

  #onEntryEnd(): void {
    const control = this.#control;
    if (!control) {
      this.#sink?.end();
      this.#sink = undefined;
      return;
    }
    this.#control = undefined;
    const bytes = Buffer.concat(control.chunks);
    let value: unknown;
    try {
      value = JSON.parse(bytes.toString('utf8'));
    } catch {
      refuse('control entry is not JSON');
    }
    this.#controlHashes[control.kind] = sha256Hex(bytes);
    if (control.kind === 'trailer') {
      this.#trailer = value;
      return;
    }
    const { offeredBase, work, config } = this.#options;
    const header = parseHeader(value, this.#options.volume, offeredBase?.id ?? null);
    this.#header = header;
    this.#options.progress?.plan(header.planned.bytes, header.planned.files);
    if (header.base !== null && offeredBase) {
      this.#base = offeredBase;
      for (const entry of offeredBase.entries) this.#baseEntries.set(entry.path, entry);
      if (!this.#options.baseStaged)
        this.#applier.enqueue(() => linkCopy(work.volumeDir, work.staging, offeredBase, config.preserveOwnership));
    } else {
      this.#applier.enqueue(async () => {
        await mkdir(work.staging, { mode: 0o700 });
      });
    }
  }

  /** The body ended: checks the stream was whole, the staged copy, the signature; swaps it in. */
  async finish(): Promise<ReceiveResult> {
    const { work, config } = this.#options;
    try {
      if (this.#reader.midEntry) refuse('malformed tar stream: the stream ended inside an entry');
      await this.#applier.settle();
      if (!this.#header) refuse('the stream is empty');
      if (this.#trailer === undefined) refuse('the stream ended before its trailer');
      if (!this.#guard.ended) refuse('the stream ended without the end-of-archive marker');
      const applier = this.#applier;
      const result = await checkAndComplete(this.#trailer, {
        work,
        config,
        base: this.#base,
        baseEntries: this.#baseEntries,
        received: applier.received,
        implicitDirectories: applier.implicitDirectories,
      });
      await this.#options.verifyBody?.({ bytes: this.#wireBytes, ...this.#controlHashes });
      await swapIn(work, config.fsync);
      // Independent files: written at once, they cost one fsync's wait instead of two.
      await Promise.all([saveCache(work, result.cache), storeManifest(work, result.manifest)]);
      rememberManifest(work.volumeDir, result.manifest, true);
      const received = [...applier.received.values()];
      return {
        manifest: result.manifest,
        mode: this.#base ? 'delta' : 'full',
        base: this.#base?.id ?? null,
        entries: received.length,
        files: received.filter((e) => e.type === 'file').length,
        bytes: received.reduce((sum, e) => sum + e.size, 0),
        deleted: result.deleted,
        wireBytes: this.#wireBytes,
      };
    } catch (error) {
      await this.abort(error);
      throw error;
    }
  }

  /** Drops the transfer: queued work ends, the staging copy goes; the current copy is untouched. */
  async abort(error: unknown): Promise<void> {
    await this.#applier.abort(error).catch(() => undefined);
    await rm(this.#options.work.staging, { recursive: true, force: true }).catch(() => undefined);
  }
}
