import { resolve } from 'node:path';
import type { Manifest } from './manifest.js';

/** The last manifest this process knew for each volume directory, and how it knew it. */
const latest = new Map<string, { manifest: Manifest; received: boolean }>();

/**
 * The manifest this process last received into `dir`, unless anything since (a scan, a
 * send) gave a newer one. A pull offers it as its base at once, and proves it with a scan
 * while the delta arrives (client.ts). A received copy is written by this package alone,
 * so its stat cache has no ctime to be moved by the hard links of the next staging copy.
 */
export function receivedManifest(dir: string): Manifest | undefined {
  const known = latest.get(resolve(dir));
  return known?.received ? known.manifest : undefined;
}

/**
 * The remembered manifest of `dir` when its id is `id`. A manifest's id is the hash of its
 * content, so this is the same manifest a kept file would give, without reading and
 * validating ~100 bytes per entry again (a relocation's final round waits for it).
 */
export function rememberedManifest(dir: string, id: string): Manifest | undefined {
  const known = latest.get(resolve(dir));
  return known?.manifest.id === id ? known.manifest : undefined;
}

/**
 * `manifest` must be validated (parseManifest) or built here; `received`: it is the copy
 * a receive just swapped in, rather than what a scan or a send found.
 */
export function rememberManifest(dir: string, manifest: Manifest, received = false): void {
  latest.set(resolve(dir), { manifest, received });
}
