import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';

export interface TempDir {
  path: string;
  remove(): Promise<void>;
}

/** A private (0700) folder under the system temp dir, `<prefix>-XXXXXX`. */
export async function makeTempDir(prefix: string): Promise<TempDir> {
  const path = await mkdtemp(join(tmpdir(), `${prefix}-`));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

/** A private folder removed when the test `t` (a `TestContext`) ends. */
export async function tempDirFor(t: { after(fn: () => Promise<void>): void }, prefix: string): Promise<string> {
  const dir = await makeTempDir(prefix);
  t.after(() => dir.remove());
  return dir.path;
}

/**
 * A private folder made before the tests of the suite (`describe`) it is called in and
 * removed after them. Call it in the suite's body; read `path` in its hooks and tests.
 */
export function suiteTempDir(prefix: string): { readonly path: string } {
  let dir: TempDir | undefined;
  before(async () => {
    dir = await makeTempDir(prefix);
  });
  after(async () => {
    await dir?.remove();
  });
  return {
    get path(): string {
      if (!dir) throw new Error(`the ${prefix} folder exists only while the suite runs`);
      return dir.path;
    },
  };
}
