import type { Header, Pack } from 'tar-stream';
import { VolumeTransferError } from './errors.js';
import { controlPaxKey, paxKeys, paxTimeFromMs } from './protocol.js';

type EntryHeader = Partial<Header> & Pick<Header, 'name'>;
type Sink = ReturnType<Pack['entry']>;

/** Resolves when `sink` can take more, or when it closed (the caller checks which). */
function drainOrClose(sink: Sink): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      sink.off('drain', done);
      sink.off('close', done);
      resolve();
    };
    sink.on('drain', done);
    sink.on('close', done);
  });
}

/** Adds an entry with no content (directory, symlink) or a small in-memory one. */
export function addEntry(pack: Pack, header: EntryHeader, content?: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const callback = (error?: Error | null) => (error ? reject(error) : resolve());
    if (content) pack.entry(header, content, callback);
    else pack.entry(header, callback);
  });
}

/**
 * Adds a file entry whose content comes in chunks, honouring back-pressure. `chunks` must
 * yield exactly `header.size` bytes (tar-stream fails the entry otherwise).
 */
export async function addStreamedEntry(pack: Pack, header: EntryHeader, chunks: AsyncIterable<Buffer>): Promise<void> {
  let settle: { resolve: () => void; reject: (error: Error) => void } | undefined;
  const finished = new Promise<void>((resolve, reject) => {
    settle = { resolve, reject };
  });
  // The entry may fail while the next chunk is being read; it is awaited below.
  finished.catch(() => undefined);
  const sink = pack.entry(header, (error) => (error ? settle?.reject(error) : settle?.resolve()));
  sink.on('error', () => {
    // Reported through the entry callback.
  });
  for await (const chunk of chunks) {
    if (sink.destroyed) break;
    if (!sink.write(chunk)) await drainOrClose(sink);
  }
  if (sink.destroyed) {
    await finished;
    throw new VolumeTransferError('tar entry closed early');
  }
  sink.end(undefined);
  await finished;
}

/** Header of a volume entry: ustar fields, and pax records for what ustar cannot hold exactly. */
export function volumeEntryHeader(fields: {
  path: string;
  type: 'file' | 'directory' | 'symlink';
  size: number;
  mode: number;
  uid: number;
  gid: number;
  mtimeMs: number;
  target?: string;
}): EntryHeader {
  const header: EntryHeader = {
    name: fields.path,
    type: fields.type,
    size: fields.type === 'file' ? fields.size : 0,
    mode: fields.mode,
    uid: fields.uid,
    gid: fields.gid,
    mtime: new Date(fields.mtimeMs),
    pax: {
      [paxKeys.mtime]: paxTimeFromMs(fields.mtimeMs),
      [paxKeys.uid]: String(fields.uid),
      [paxKeys.gid]: String(fields.gid),
      [paxKeys.mode]: fields.mode.toString(8),
    },
  };
  if (fields.target !== undefined) header.linkname = fields.target;
  return header;
}

/** Header of one of the stream's two control entries (JSON documents). */
export function controlEntryHeader(kind: 'header' | 'trailer', size: number): EntryHeader {
  return {
    name: `.sf-${kind}.json`,
    type: 'file',
    size,
    mode: 0o600,
    mtime: new Date(0),
    pax: { [controlPaxKey]: kind },
  };
}
