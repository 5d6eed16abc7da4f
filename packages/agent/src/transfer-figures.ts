import type { TransferFigures } from '@service-foundry/core';
import type { TransferResult } from '@service-foundry/volumes';

/** The figures of a transfer that records and events keep (relocations, restores, backups). */
export function transferFigures(result: TransferResult): TransferFigures {
  const { mode, bytes, wireBytes, files, deleted, durationMs, mbPerSecond } = result;
  return { mode, bytes, wireBytes, files, deleted, durationMs, mbPerSecond };
}

/** Sizes in messages and events, in decimal units like the MB/s beside them. */
export function formatBytes(bytes: number): string {
  if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(2)} GB`;
  if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(1)} MB`;
  if (bytes >= 1e3) return `${(bytes / 1e3).toFixed(1)} kB`;
  return `${bytes} B`;
}
