import { Catalog } from '@service-foundry/core';
import { ensureCatalogImages } from '@service-foundry/images';
import type { Command } from '../command.js';
import { UsageError } from '../errors.js';
import { formatBytes, formatSeconds } from '../format.js';
import { printTable, say } from '../output.js';

/** Builds the catalog's images offline from Debian packages, skipping tags that exist. */
export async function buildImages(catalog: Catalog, force: boolean): Promise<void> {
  const results = await ensureCatalogImages(catalog, {
    force,
    onProgress: (line: string) => process.stderr.write(`  ${line}\n`),
  });
  printTable(
    ['image', 'size', 'built', 'time'],
    results.map((r) => [r.tag, formatBytes(r.sizeBytes), r.built ? 'yes' : 'cached', formatSeconds(r.seconds * 1000)]),
  );
}

export const images: Command = {
  name: 'images',
  summary: 'images build [--force]: build the service images offline from Debian packages',
  args: ['build'],
  options: { force: { type: 'boolean' } },
  async run([verb], options) {
    if (verb !== 'build') throw new UsageError('usage: sf images build [--force]');
    await buildImages(await Catalog.load(), options.force === true);
    say('Images ready.');
  },
};
