import { rm } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { InvalidInputError } from '@service-foundry/core';
import { verifyBodySignature } from './auth.js';
import { readBodyTrailers } from './body-check.js';
import { compileTransferConfig, type TransferConfig, type TransferOptions } from './config.js';
import { VolumeTransferError } from './errors.js';
import { errorFromResponse, peerError, readJsonBody, responseOf, startSignedRequest } from './http-client.js';
import { linkCopy } from './link-copy.js';
import type { Manifest } from './manifest.js';
import { parseManifest } from './manifest-check.js';
import { receivedManifest } from './manifest-hint.js';
import { type ProgressListener, ProgressMeter } from './progress.js';
import { headerNames, isVolumeName, manifestCheck } from './protocol.js';
import { receivedResult } from './receiver.js';
import { lstatOrUndefined } from './safe-fs.js';
import { SnapshotIntake } from './snapshot-intake.js';
import { requestSnapshot, type SnapshotAnswer } from './snapshot-request.js';
import { clientTlsOptions, readVolumeTls, tlsDialOptions, type VolumeTlsFiles } from './tls.js';
import { withVolumeLock } from './volume-lock.js';
import { currentManifest, prepareWorkDir, type WorkDir, workDirFor } from './work-dir.js';

/** What one pull moved. */
export interface TransferResult {
  volume: string;
  mode: 'full' | 'delta';
  /** Manifest the delta applied to; null for a full copy. */
  base: string | null;
  /** Manifest of the copy the receiver now holds. */
  manifestId: string;
  /** HTTP body bytes (tar framing, control entries and content). */
  wireBytes: number;
  /** File content bytes and files sent; entries includes directories and symlinks. */
  bytes: number;
  files: number;
  entries: number;
  /** Paths the receiver removed. */
  deleted: number;
  durationMs: number;
  /** Content throughput, MB/s (10^6 bytes). */
  mbPerSecond: number;
}

export interface PeerOptions extends TransferOptions {
  /** The peer's volume server: `https://host:port` with `tls`, else `http://host:port`. */
  url: string;
  /**
   * Dial the peer over TLS: its certificate must come from `caFile`'s CA and name the URL's
   * host; this end presents `certFile` (mutual TLS). With it, an `http:` URL is refused
   * (no downgrade); without it, an `https:` one is. @default undefined (plain HTTP)
   */
  tls?: VolumeTlsFiles;
  /** The volume's name on the peer (Docker volume name rules). */
  name: string;
  onProgress?: ProgressListener;
  signal?: AbortSignal;
}

export interface PullOptions extends PeerOptions {
  /** Directory that receives the copy; created when missing, replaced atomically when complete. */
  into: string;
  /**
   * `auto`: offer the copy already in `into` so the peer sends only what changed (a full
   * copy when the peer no longer knows that state); `none`: always a full copy.
   * @default 'auto'
   */
  since?: 'auto' | 'none';
}

function transferConfig(options: PeerOptions): Readonly<TransferConfig> {
  const { secret, limits, clockSkewMs, idleTimeoutMs, fsync, preserveOwnership } = options;
  const input: TransferOptions = { secret };
  if (limits !== undefined) input.limits = limits;
  if (clockSkewMs !== undefined) input.clockSkewMs = clockSkewMs;
  if (idleTimeoutMs !== undefined) input.idleTimeoutMs = idleTimeoutMs;
  if (fsync !== undefined) input.fsync = fsync;
  if (preserveOwnership !== undefined) input.preserveOwnership = preserveOwnership;
  return compileTransferConfig(input);
}

function checkPeer(options: PeerOptions, dir: string, dirField: string): string {
  const problems: string[] = [];
  if (!isVolumeName(options.name)) problems.push(`name ${JSON.stringify(options.name)} is not a volume name`);
  try {
    const url = new URL(options.url);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') problems.push('url must be http: or https:');
    else if (options.tls && url.protocol !== 'https:')
      problems.push(`url ${options.url} is not https: (TLS is configured)`);
    else if (!options.tls && url.protocol === 'https:')
      problems.push(`url ${options.url} is https: but no tls files are given`);
  } catch {
    problems.push(`url ${JSON.stringify(options.url)} is not a URL`);
  }
  if (typeof dir !== 'string' || !isAbsolute(dir)) problems.push(`${dirField} must be an absolute path`);
  if (problems.length > 0) throw new InvalidInputError('invalid volume transfer options', problems);
  return resolve(dir);
}

/** The manifest of the peer's copy of a volume, or undefined when it has none. */
export async function fetchManifest(options: PeerOptions): Promise<Manifest | undefined> {
  const config = transferConfig(options);
  checkPeer(options, '/', 'dir');
  const tls = options.tls ? clientTlsOptions(await readVolumeTls(options.tls)) : undefined;
  const { request } = startSignedRequest(config, options.url, 'GET', `/volumes/${options.name}/manifest`, {
    signal: options.signal,
    tls,
  });
  const response = responseOf(request);
  request.end();
  const answer = await response;
  if (answer.statusCode === 404) {
    answer.resume();
    return undefined;
  }
  if (answer.statusCode !== 200) throw await errorFromResponse(answer, `manifest of ${options.name}`);
  return parseManifest(
    await readJsonBody(answer, config.limits.maxControlBytes),
    config.limits,
    `manifest of ${options.name}`,
  );
}

/** A request sent, and the local copy's manifest (and its hard-link staging) prepared meanwhile. */
interface OpenedPull {
  response: SnapshotAnswer;
  nonce: string;
  local: Manifest | undefined;
  /** `staging` holds the link copy of `local`. */
  staged: boolean;
  /**
   * Settles once the scan proving `local` is what the copy here holds is done; rejects with
   * {@link StaleHint} when it is not. Awaited before the swap (and before the lock is left).
   */
  proven?: Promise<void>;
}

/** The copy here is no longer the manifest it had when this process received it. */
class StaleHint extends Error {}

type Requester = (since: string | undefined) => { pending: Promise<SnapshotAnswer>; nonce: string };

/**
 * Copies the peer's volume into `into`: a delta against what `into` holds when the peer
 * still knows that state, a full copy otherwise. `into` changes only if everything
 * arrived and checked out (then it is replaced in one swap); a failed or interrupted pull
 * leaves it as it was and can simply be repeated.
 */
export async function pullSnapshot(options: PullOptions): Promise<TransferResult> {
  const config = transferConfig(options);
  const into = checkPeer(options, options.into, 'into');
  const tls = options.tls ? tlsDialOptions(await readVolumeTls(options.tls)) : undefined;
  const startedAt = Date.now();
  return withVolumeLock(into, async () => {
    const work = workDirFor(into);
    // Nothing is created on this side before the peer has said yes.
    const existed = (await lstatOrUndefined(into)) !== undefined || (await lstatOrUndefined(work.root)) !== undefined;
    if (existed) await prepareWorkDir(work);
    const request: Requester = (since) => {
      const path = `/volumes/${options.name}/snapshot?since=${since ?? 'none'}&check=${manifestCheck}`;
      const { answer, nonce } = requestSnapshot(config, options.url, path, { signal: options.signal, tls });
      // Observed here; the caller awaits it (or drops it when the staging failed first).
      answer.catch(() => undefined);
      return { pending: answer, nonce };
    };
    const receive = (opened: OpenedPull) => receiveAnswer(options, config, work, existed, opened, startedAt);
    const incremental = options.since !== 'none' && existed;
    const received = incremental ? receivedManifest(into) : undefined;
    if (received) {
      try {
        return await receive(await openOverReceived(work, received, request, config.preserveOwnership));
      } catch (error) {
        // The copy here changed since it was received: ask again with what a scan finds.
        if (!(error instanceof StaleHint)) throw error;
      }
    }
    const local = incremental ? await currentManifest(work) : undefined;
    const { pending, nonce } = request(local?.id);
    return receive({ response: await pending, nonce, local, staged: false });
  });
}

/** Receives the answer of an opened pull into `work` (under the volume's lock). */
async function receiveAnswer(
  options: PullOptions,
  config: Readonly<TransferConfig>,
  work: WorkDir,
  existed: boolean,
  opened: OpenedPull,
  startedAt: number,
): Promise<TransferResult> {
  const { response, nonce, local, proven } = opened;
  try {
    const offeredBase =
      response.statusCode === 200 && response.headers[headerNames.base] === local?.id ? local : undefined;
    // A link copy made meanwhile serves only a delta against it.
    if (opened.staged && !offeredBase) await rm(work.staging, { recursive: true, force: true });
    if (response.statusCode !== 200) throw await answerError(response, `snapshot of ${options.name}`);
    if (!existed) await prepareWorkDir(work);
    const progress = new ProgressMeter(options.onProgress);
    let trailers: Record<string, string> = {};
    const intake = new SnapshotIntake({
      volume: options.name,
      work,
      offeredBase,
      baseStaged: opened.staged && offeredBase !== undefined,
      config,
      progress,
      verifyBody: async (proof) => {
        // The checksum trailer is signed as sent: `none`, or a CRC from a sender before
        // check=manifest (nothing here depends on it; the manifest is what is checked).
        const body = readBodyTrailers(trailers);
        const signed = body.crc32 !== undefined && { ...proof, crc32: body.crc32 };
        if (!signed || !verifyBodySignature(config.secret, nonce, signed, body.signature)) {
          throw new VolumeTransferError('snapshot body is not signed with the cluster secret');
        }
        await proven;
      },
    });
    try {
      trailers = await response.receive(intake);
    } catch (error) {
      await intake.abort(error);
      throw error;
    }
    const result = await intake.finish();
    progress.finish();
    return receivedResult(options.name, result, startedAt);
  } catch (error) {
    // The scan must not outlive the lock; when it found the copy changed, that is the cause.
    const stale = await proven?.then(
      () => undefined,
      (reason: unknown) => reason,
    );
    throw stale instanceof StaleHint ? stale : error;
  } finally {
    response.destroy();
  }
}

/** The error of a non-200 snapshot answer, with the peer's JSON message when it sent one. */
async function answerError(answer: SnapshotAnswer, what: string): Promise<VolumeTransferError> {
  let body: unknown;
  try {
    body = JSON.parse((await answer.readAll(1024 * 1024)).toString('utf8'));
  } catch {
    // The status alone has to do.
  }
  return peerError(answer.statusCode, body, what);
}

/**
 * The fast start of a delta against the copy this process last received here (a
 * relocation's rounds): the request goes at once, and the staging copy (hard links) is
 * built from the received manifest while the peer scans its side. The scan proving the
 * copy here is still that manifest runs while the delta arrives, and must pass before
 * the swap; when it fails, the delta is dropped ({@link StaleHint}) and the caller asks
 * again. Scanning first would put a walk of the whole volume before the transfer.
 */
async function openOverReceived(
  work: WorkDir,
  received: Manifest,
  request: Requester,
  preserveOwnership: boolean,
): Promise<OpenedPull> {
  const { pending, nonce } = request(received.id);
  const staging = linkCopy(work.volumeDir, work.staging, received, preserveOwnership);
  const [answered, linked] = await Promise.allSettled([pending, staging]);
  if (answered.status === 'rejected' || linked.status === 'rejected') {
    if (answered.status === 'fulfilled') answered.value.destroy();
    await rm(work.staging, { recursive: true, force: true });
    // A file of the manifest is gone or replaced: the copy here is not what was received.
    if (answered.status === 'fulfilled') throw new StaleHint();
    throw answered.reason;
  }
  const proven = currentManifest(work).then((found) => {
    if (found?.id !== received.id) throw new StaleHint();
  });
  proven.catch(() => undefined);
  return { response: answered.value, nonce, local: received, staged: true, proven };
}
