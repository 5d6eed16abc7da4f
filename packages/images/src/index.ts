import type { Catalog } from '@service-foundry/core';
import { ensureBaseImageWith } from './base-image.js';
import { type EnsureImageOptions, splitImageOptions } from './config.js';
import type { ImageResult } from './docker-images.js';
import { ensureServiceImageWith } from './service-image.js';

export { ensureBaseImage, splitTag } from './base-image.js';
export { packBuildContext } from './build-context.js';
export {
  compileImageBuildConfig,
  type EnsureImageOptions,
  type ImageBuildConfig,
  type ImageBuildHandles,
  type ImageBuildOptions,
} from './config.js';
export {
  type FindDebianMirrorOptions,
  findDebianMirror,
  mirrorEnvVar,
  parseDeb822Sources,
  parseOneLineSources,
} from './debian-mirror.js';
export { formatSize, type ImageResult, imageId, imageSize } from './docker-images.js';
export { ensureServiceImage, serviceContextDir } from './service-image.js';

/**
 * The base image, then every catalog entry's image, each skipped when its tag exists
 * (`force` rebuilds the entries, `rebuildBase` the base). What `sf images build` runs.
 */
export async function ensureCatalogImages(catalog: Catalog, options: EnsureImageOptions = {}): Promise<ImageResult[]> {
  const { config, handles } = splitImageOptions(options);
  const results = [await ensureBaseImageWith(config, handles)];
  // The base is now in place (or rebuilt once): entries must not rebuild it again.
  const entryConfig = { ...config, rebuildBase: false };
  for (const entry of catalog.entries) {
    results.push(await ensureServiceImageWith(entry, entryConfig, handles));
  }
  return results;
}
