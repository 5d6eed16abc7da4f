import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { dirname, isAbsolute, join, posix, relative, sep } from 'node:path';
import { Readable } from 'node:stream';
import { InvalidInputError } from '@service-foundry/core';
import { type Header, pack } from 'tar-stream';

/** A build context is a few small files; anything bigger is a mistake in the catalog. */
const maxContextBytes = 64 * 1024 * 1024;

/**
 * A fixed time for every entry: the build cache then depends on file contents and modes,
 * not on when the repository was checked out.
 */
const fixedMtime = new Date('2024-01-01T00:00:00Z');

interface ContextEntry {
  header: Partial<Header> & Pick<Header, 'name'>;
  content?: Buffer;
}

function toTarName(root: string, path: string): string {
  return relative(root, path).split(sep).join(posix.sep);
}

async function collect(root: string, dir: string, entries: ContextEntry[], total: { bytes: number }): Promise<void> {
  const names = (await readdir(dir)).sort();
  for (const name of names) {
    const path = join(dir, name);
    const entryName = toTarName(root, path);
    const stats = await lstat(path);
    const mode = stats.mode & 0o7777;
    const base = { name: entryName, mode, mtime: fixedMtime, uid: 0, gid: 0 };
    if (stats.isDirectory()) {
      entries.push({ header: { ...base, type: 'directory' } });
      await collect(root, path, entries, total);
    } else if (stats.isFile()) {
      total.bytes += stats.size;
      if (total.bytes > maxContextBytes) {
        throw new InvalidInputError(`build context ${root} is larger than ${maxContextBytes} bytes`);
      }
      const content = await readFile(path);
      entries.push({ header: { ...base, type: 'file', size: content.length }, content });
    } else if (stats.isSymbolicLink()) {
      const target = await readlink(path);
      const resolved = join(dirname(path), target);
      const inside = relative(root, resolved);
      if (isAbsolute(target) || inside.startsWith('..') || isAbsolute(inside)) {
        throw new InvalidInputError(`build context ${root}: symlink ${entryName} points outside the context`);
      }
      entries.push({ header: { ...base, type: 'symlink', linkname: target } });
    } else {
      throw new InvalidInputError(`build context ${root}: ${entryName} is not a file, folder or symlink`);
    }
  }
}

/** Packs a folder as the tar stream `POST /build` expects, with the Dockerfile at its root. */
export async function packBuildContext(root: string): Promise<Readable> {
  const entries: ContextEntry[] = [];
  await collect(root, root, entries, { bytes: 0 });
  if (!entries.some((entry) => entry.header.name === 'Dockerfile' && entry.header.type === 'file')) {
    throw new InvalidInputError(`build context ${root} has no Dockerfile`);
  }
  const archive = pack();
  for (const entry of entries) {
    if (entry.content) archive.entry(entry.header, entry.content);
    else archive.entry(entry.header);
  }
  archive.finalize();
  // tar-stream's streams are streamx streams; Docker's client pipes a Node stream.
  return Readable.from(archive, { objectMode: false });
}
