import { InvalidInputError } from '@service-foundry/core';
import type { ManifestEntry } from './manifest.js';
import { msFromPaxTime, paxKeys } from './protocol.js';
import type { TarHeader } from './tar-reader.js';

/** What a volume entry carries besides its path, type and content. */
export type EntryMetadata = Pick<ManifestEntry, 'mode' | 'uid' | 'gid' | 'mtimeMs'>;

/** Refuses one entry of a snapshot stream (the whole stream fails with it). */
export function refuseEntry(name: string, problem: string): never {
  throw new InvalidInputError(`snapshot entry ${JSON.stringify(name)} refused`, [problem]);
}

function paxNumber(header: TarHeader, key: string, radix: 8 | 10): number | undefined {
  const text = header.pax?.[key];
  if (text === undefined) return undefined;
  const pattern = radix === 8 ? /^[0-7]{1,7}$/ : /^[0-9]{1,10}$/;
  if (!pattern.test(text)) refuseEntry(header.name, `malformed pax ${key}`);
  return Number.parseInt(text, radix);
}

/** An entry's metadata: pax records when present (exact), else the ustar fields. */
export function metadataOf(header: TarHeader): EntryMetadata {
  const paxTime = header.pax?.[paxKeys.mtime];
  const mtimeMs = paxTime === undefined ? header.mtime.getTime() : msFromPaxTime(paxTime);
  if (mtimeMs === undefined || !Number.isSafeInteger(mtimeMs)) refuseEntry(header.name, 'malformed mtime');
  return {
    mode: (paxNumber(header, paxKeys.mode, 8) ?? header.mode) & 0o7777,
    uid: paxNumber(header, paxKeys.uid, 10) ?? header.uid,
    gid: paxNumber(header, paxKeys.gid, 10) ?? header.gid,
    mtimeMs,
  };
}
