import { spawn } from 'node:child_process';
import { chmod, mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { DockerError, ProcessError } from '@service-foundry/core';
import type Dockerode from 'dockerode';
import { type EnsureImageOptions, type ImageBuildConfig, type ImageBuildHandles, splitImageOptions } from './config.js';
import { findDebianMirror } from './debian-mirror.js';
import { debootstrap, removeRootfs, trimRootfs } from './debootstrap.js';
import { dockerClient, formatSize, type ImageResult, imageSize, progressSink, secondsSince } from './docker-images.js';
import { readDockerStream } from './docker-stream.js';
import { withImageLock } from './image-lock.js';

/** `repo/name:tag` → `{ repo: 'repo/name', tag: 'tag' }` (a colon before the last slash is a registry port). */
export function splitTag(reference: string): { repo: string; tag: string } {
  const colon = reference.lastIndexOf(':');
  if (colon > reference.lastIndexOf('/')) return { repo: reference.slice(0, colon), tag: reference.slice(colon + 1) };
  return { repo: reference, tag: 'latest' };
}

/** Names the Docker Engine, so builds against different engines do not wait for each other. */
export function engineKey(docker: Dockerode): string {
  const modem = docker.modem as { socketPath?: string; host?: string; port?: number | string };
  return modem.socketPath ?? `${modem.host ?? 'localhost'}:${modem.port ?? ''}`;
}

/** `tar -C rootfs -c .` streamed into `POST /images/create?fromSrc=-`. */
async function importRootfs(docker: Dockerode, rootfs: string, reference: string, signal?: AbortSignal): Promise<void> {
  const tar = spawn('tar', ['--numeric-owner', '-C', rootfs, '-c', '.'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let tarErrors = '';
  tar.stderr.on('data', (chunk: Buffer) => {
    tarErrors += chunk.toString();
  });
  const tarExit = new Promise<number>((resolve, reject) => {
    tar.once('error', (error) => reject(new ProcessError(`tar failed to start: ${error.message}`, null)));
    tar.once('close', (code) => resolve(code ?? -1));
  });
  // Observed below on success; on an import failure nobody awaits it any more.
  void tarExit.catch(() => {});
  const { repo, tag } = splitTag(reference);
  // No entrypoint or command of its own: the base is only ever built FROM.
  const importOptions = {
    repo,
    tag,
    changes: ['ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'CMD ["/bin/bash"]'],
    ...(signal ? { abortSignal: signal } : {}),
  };
  let response: NodeJS.ReadableStream;
  try {
    response = await docker.importImage(tar.stdout, importOptions);
  } catch (error) {
    tar.kill();
    throw new DockerError(`importing ${reference} failed: ${(error as Error).message}`, { cause: error });
  }
  await readDockerStream(response, `importing ${reference}`, () => {});
  const code = await tarExit;
  if (code !== 0) {
    // Docker took whatever tar produced before failing: that image is incomplete.
    await docker
      .getImage(reference)
      .remove()
      .catch(() => {});
    throw new ProcessError(`tar of the base root failed with code ${code}: ${tarErrors.trim()}`, code);
  }
}

/** ensureBaseImage with an already compiled config; shared with the service image builder. */
export async function ensureBaseImageWith(
  config: Readonly<ImageBuildConfig>,
  handles: ImageBuildHandles,
): Promise<ImageResult> {
  const started = Date.now();
  const docker = dockerClient(config, handles);
  const progress = progressSink(handles);
  const tag = config.baseTag;

  const existing = await imageSize(docker, tag);
  if (existing !== undefined && !config.rebuildBase) {
    return { tag, sizeBytes: existing, built: false, seconds: secondsSince(started) };
  }

  const lock = {
    key: `${engineKey(docker)} ${tag}`,
    timeoutMs: config.lockTimeoutMs,
    onWait: () => progress(`base image ${tag}: waiting for another process that is building it`),
    ...(handles.signal ? { signal: handles.signal } : {}),
  };
  return withImageLock(lock, async () => {
    const builtMeanwhile = config.rebuildBase ? undefined : await imageSize(docker, tag);
    if (builtMeanwhile !== undefined) {
      return { tag, sizeBytes: builtMeanwhile, built: false, seconds: secondsSince(started) };
    }
    const mirror = config.mirror ?? (await findDebianMirror({ suite: config.suite }));
    const tempDir = await mkdtemp(join(config.workDir, 'sf-debootstrap-'));
    // debootstrap into a child of the 0700 temp dir: the image's / must be 0755.
    const rootfs = join(tempDir, 'rootfs');
    try {
      progress(`base image ${tag}: debootstrap --variant=minbase ${config.suite} from ${mirror} (takes ~30 s)`);
      await debootstrap({
        executable: config.debootstrapPath,
        suite: config.suite,
        mirror,
        dir: rootfs,
        onProgress: progress,
        ...(handles.signal ? { signal: handles.signal } : {}),
      });
      await chmod(rootfs, 0o755);
      await trimRootfs(rootfs);
      progress(`base image ${tag}: importing into Docker`);
      await importRootfs(docker, rootfs, tag, handles.signal);
    } finally {
      await removeRootfs(tempDir);
    }
    const sizeBytes = await imageSize(docker, tag);
    if (sizeBytes === undefined) throw new DockerError(`importing ${tag} reported success but the image is missing`);
    const seconds = secondsSince(started);
    progress(`base image ${tag}: ${formatSize(sizeBytes)} in ${seconds} s`);
    return { tag, sizeBytes, built: true, seconds };
  });
}

/**
 * Makes sure the Debian base image exists in Docker: when its tag is missing, debootstraps
 * a minbase root from the machine's Debian mirror, trims it and imports it under the tag.
 * Needs root and the `debootstrap` package; ~30–60 s and ~75 MB.
 */
export async function ensureBaseImage(options: EnsureImageOptions = {}): Promise<ImageResult> {
  const { config, handles } = splitImageOptions(options);
  return ensureBaseImageWith(config, handles);
}
