import { Catalog } from '@service-foundry/core';
import { ensureCatalogImages } from '@service-foundry/images';
import type { Command } from '../command.js';
import { UsageError } from '../errors.js';
import { printTable, say } from '../output.js';

/** Builds the catalog's images offline from Debian packages, skipping tags that exist. */
export async function buildImages(catalog: Catalog, force: boolean): Promise<void> {
  const results = await ensureCatalogImages(catalog, {
    force,
    onProgress: (line: string) => process.stderr.write(`  ${line}\n`),
  });
  printTable(
    ['image', 'size (MB)', 'built', 'seconds'],
    results.map((r) => [r.tag, (r.sizeBytes / 1e6).toFixed(1), r.built ? 'yes' : 'cached', r.seconds.toFixed(1)]),
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
