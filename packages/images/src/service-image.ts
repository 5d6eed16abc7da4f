import { isAbsolute, relative, resolve } from 'node:path';
import { type CatalogEntry, CatalogError, DockerError } from '@service-foundry/core';
import { engineKey, ensureBaseImageWith } from './base-image.js';
import { packBuildContext } from './build-context.js';
import {
  type EnsureImageOptions,
  type ImageBuildConfig,
  type ImageBuildHandles,
  imageTagPattern,
  splitImageOptions,
} from './config.js';
import {
  dockerClient,
  formatSize,
  type ImageResult,
  imageId,
  imageSize,
  progressSink,
  secondsSince,
} from './docker-images.js';
import { messageLines, readDockerStream } from './docker-stream.js';
import { withImageLock } from './image-lock.js';

/** The entry's build context folder; it must lie inside the entry's own folder. */
export function serviceContextDir(entry: CatalogEntry): string {
  const dir = resolve(entry.dir, entry.image.context);
  const inside = relative(entry.dir, dir);
  if (inside.startsWith('..') || isAbsolute(inside)) {
    throw new CatalogError(
      `${entry.osb.name}: image.context ${JSON.stringify(entry.image.context)} leaves ${entry.dir}`,
    );
  }
  return dir;
}

function checkTag(entry: CatalogEntry): string {
  const tag = entry.image.tag;
  if (!new RegExp(imageTagPattern).test(tag)) {
    throw new CatalogError(`${entry.osb.name}: image.tag ${JSON.stringify(tag)} is not a valid Docker tag`);
  }
  if (tag !== entry.runtime.image) {
    throw new CatalogError(`${entry.osb.name}: image.tag ${tag} differs from runtime.image ${entry.runtime.image}`);
  }
  return tag;
}

/** ensureServiceImage with an already compiled config; used by ensureCatalogImages. */
export async function ensureServiceImageWith(
  entry: CatalogEntry,
  config: Readonly<ImageBuildConfig>,
  handles: ImageBuildHandles,
): Promise<ImageResult> {
  const started = Date.now();
  const tag = checkTag(entry);
  const contextDir = serviceContextDir(entry);
  const docker = dockerClient(config, handles);
  const progress = progressSink(handles);

  const existing = await imageSize(docker, tag);
  if (existing !== undefined && !config.force) {
    return { tag, sizeBytes: existing, built: false, seconds: secondsSince(started) };
  }

  const lock = {
    key: `${engineKey(docker)} ${tag}`,
    timeoutMs: config.lockTimeoutMs,
    onWait: () => progress(`image ${tag}: waiting for another process that is building it`),
    ...(handles.signal ? { signal: handles.signal } : {}),
  };
  return withImageLock(lock, async () => {
    const replaced = config.force ? await imageId(docker, tag) : undefined;
    const builtMeanwhile = config.force ? undefined : await imageSize(docker, tag);
    if (builtMeanwhile !== undefined) {
      return { tag, sizeBytes: builtMeanwhile, built: false, seconds: secondsSince(started) };
    }
    await ensureBaseImageWith(config, { ...handles, docker });
    progress(`image ${tag}: building ${contextDir} FROM ${config.baseTag}`);
    const context = await packBuildContext(contextDir);
    let output: NodeJS.ReadableStream;
    try {
      output = await docker.buildImage(context, {
        t: tag,
        buildargs: { BASE_IMAGE: config.baseTag },
        labels: { 'sf.service': entry.osb.name },
        // The classic builder: BuildKit needs buildx, which these engines lack.
        version: '1',
        rm: true,
        forcerm: true,
        pull: false,
        nocache: config.noCache,
        ...(handles.signal ? { abortSignal: handles.signal } : {}),
      });
    } catch (error) {
      throw new DockerError(`building ${tag} failed: ${(error as Error).message}`, { cause: error });
    }
    await readDockerStream(output, `building ${tag}`, (message) => {
      for (const line of messageLines(message)) progress(`image ${tag}: ${line}`);
    });
    const sizeBytes = await imageSize(docker, tag);
    if (sizeBytes === undefined) throw new DockerError(`building ${tag} reported success but the image is missing`);
    if (replaced && replaced !== (await imageId(docker, tag))) {
      // The image the tag used to name is now dangling; containers still using it keep it.
      await docker
        .getImage(replaced)
        .remove()
        .catch(() => {});
    }
    const seconds = secondsSince(started);
    progress(`image ${tag}: ${formatSize(sizeBytes)} in ${seconds} s`);
    return { tag, sizeBytes, built: true, seconds };
  });
}

/**
 * Makes sure a catalog entry's image exists: unless `force`, an existing tag is kept as
 * is; otherwise its build context (`<entry.dir>/<image.context>`) is built with the
 * classic builder, `BASE_IMAGE` set to the base tag (built first if missing).
 */
export async function ensureServiceImage(entry: CatalogEntry, options: EnsureImageOptions = {}): Promise<ImageResult> {
  const { config, handles } = splitImageOptions(options);
  return ensureServiceImageWith(entry, config, handles);
}
