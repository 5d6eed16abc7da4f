import { resolve } from 'node:path';

const hints = new Map<string, string>();

/**
 * The manifest id a volume directory had when this process last scanned or received it.
 * A pull sends it as its base at once and scans the directory while the peer prepares
 * its stream, instead of scanning first. Only a hint: the delta is applied only when the
 * scan finds the same id (client.ts); otherwise the pull asks again with the real one.
 */
export function manifestHint(dir: string): string | undefined {
  return hints.get(resolve(dir));
}

export function rememberManifest(dir: string, id: string): void {
  hints.set(resolve(dir), id);
}
