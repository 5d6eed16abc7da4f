import type { IncomingMessage, ServerResponse } from 'node:http';
import { InvalidInputError, NotFoundError } from '@service-foundry/core';
import { type RequestVerifier, signBody } from './auth.js';
import { BodyChecksum, type BodyProof, trailerAnnouncement } from './body-check.js';
import type { TransferConfig } from './config.js';
import { VolumeTransferError } from './errors.js';
import { sendJson, waitWritable } from './http-answers.js';
import { rememberManifest } from './manifest-hint.js';
import { megabytesPerSecond, ProgressMeter } from './progress.js';
import { headerNames, isManifestId, manifestCheck } from './protocol.js';
import { lstatOrUndefined } from './safe-fs.js';
import { streamSnapshot } from './sender.js';
import { withVolumeLock } from './volume-lock.js';
import {
  currentManifest,
  loadCache,
  loadManifest,
  prepareWorkDir,
  saveCache,
  storeManifest,
  workDirFor,
} from './work-dir.js';

/** One finished (or failed) transfer, for logs and the cluster's event log. */
export interface TransferEvent {
  volume: string;
  /** Always `sent`: a server only serves copies (pulls); kept so a log line says which way. */
  direction: 'sent';
  ok: boolean;
  /** Why it failed (no secrets, no file contents). */
  error?: string;
  mode?: 'full' | 'delta';
  base?: string | null;
  manifestId?: string;
  /** HTTP body bytes. */
  wireBytes: number;
  /** File content bytes and files moved. */
  bytes: number;
  files: number;
  deleted?: number;
  durationMs: number;
  mbPerSecond: number;
  peer: string;
}

/** What the three handlers share: the compiled config, the request verifier, the event sink. */
export interface HandlerContext {
  config: Readonly<TransferConfig>;
  verifier: RequestVerifier;
  report: (event: TransferEvent) => void;
}

/** Response bytes buffered before waiting for the socket to drain. */
const responseBufferBytes = 8 * 1024 * 1024;

/** `GET /volumes/:name/manifest`: the manifest of this host's copy (stat cache makes it cheap). */
export async function serveManifest(res: ServerResponse, name: string, dir: string): Promise<void> {
  const work = workDirFor(dir);
  if (!(await lstatOrUndefined(dir)) && !(await lstatOrUndefined(work.root))) throw new NotFoundError('volume', name);
  await withVolumeLock(dir, async () => {
    await prepareWorkDir(work);
    const manifest = await currentManifest(work);
    if (!manifest) throw new NotFoundError('volume', name);
    sendJson(res, 200, manifest);
  });
}

/**
 * `GET /volumes/:name/snapshot?since=<manifest id|none>`: the volume as a snapshot stream, a
 * delta when `since` names a manifest this host still keeps, a full copy otherwise (the
 * `x-sf-base` header says which). Checksum and signature go in the trailers.
 */
export async function serveSnapshot(
  context: HandlerContext,
  req: IncomingMessage,
  res: ServerResponse,
  name: string,
  dir: string,
  nonce: string,
): Promise<void> {
  const { config, report } = context;
  const params = new URL(req.url ?? '/', 'http://volume').searchParams;
  const since = params.get('since') ?? 'none';
  if (since !== 'none' && !isManifestId(since)) throw new InvalidInputError('since must be a manifest id or none');
  const check = params.get('check');
  if (check !== null && check !== manifestCheck) throw new InvalidInputError(`check must be ${manifestCheck}`);
  const work = workDirFor(dir);
  if (!(await lstatOrUndefined(dir)) && !(await lstatOrUndefined(work.root))) throw new NotFoundError('volume', name);
  const startedAt = Date.now();
  // Receivers before check=manifest verify a CRC-32 of the body; it costs ~0.4 CPU-s/GiB.
  const checksum = new BodyChecksum(check === null);
  const progress = new ProgressMeter();
  const peer = req.socket.remoteAddress ?? 'unknown';
  await withVolumeLock(dir, async () => {
    await prepareWorkDir(work);
    if (!(await lstatOrUndefined(dir))) throw new NotFoundError('volume', name);
    const base = since === 'none' ? undefined : await loadManifest(work, since, config.limits);
    const cache = await loadCache(work);
    const { stream, done, recycle } = streamSnapshot(dir, {
      volume: name,
      ...(base ? { base } : {}),
      cache,
      progress,
    });
    done.catch(() => undefined);
    res.statusCode = 200;
    res.setHeader('content-type', 'application/x-tar');
    res.setHeader(headerNames.base, base?.id ?? 'none');
    res.setHeader('trailer', trailerAnnouncement);
    try {
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        checksum.update(chunk);
        // Own high-water mark: node's 16 KiB would stall the pipeline on every chunk.
        res.write(chunk, () => recycle(chunk));
        if (res.writableLength > responseBufferBytes) await waitWritable(res);
        if (res.destroyed) throw new VolumeTransferError('the receiver closed the connection');
      }
      const result = await done;
      const proof: BodyProof = { crc32: checksum.hex(), ...result.control };
      res.addTrailers({
        [headerNames.bodyChecksum]: proof.crc32,
        [headerNames.bodySignature]: signBody(config.secret, nonce, proof),
      });
      res.end();
      await Promise.all([saveCache(work, cache), storeManifest(work, result.manifest)]);
      // The next request from this receiver (a relocation's final round) asks for a delta
      // against this manifest: kept in memory, it is not read and validated again.
      rememberManifest(dir, result.manifest);
      const durationMs = Date.now() - startedAt;
      report({
        volume: name,
        direction: 'sent',
        ok: true,
        mode: result.base ? 'delta' : 'full',
        base: result.base,
        manifestId: result.manifest.id,
        wireBytes: checksum.bytes,
        bytes: result.sent.bytes,
        files: result.sent.files,
        deleted: result.deleted.length,
        durationMs,
        mbPerSecond: megabytesPerSecond(result.sent.bytes, durationMs),
        peer,
      });
    } catch (error) {
      stream.destroy();
      const durationMs = Date.now() - startedAt;
      const sent = progress.current();
      report({
        volume: name,
        direction: 'sent',
        ok: false,
        error: error instanceof Error ? error.message : String(error),
        wireBytes: checksum.bytes,
        bytes: sent.bytes,
        files: sent.files,
        durationMs,
        mbPerSecond: megabytesPerSecond(sent.bytes, durationMs),
        peer,
      });
      throw error;
    }
  });
}
