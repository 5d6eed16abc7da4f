import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  compileLimits,
  diffManifests,
  findEscapingSymlink,
  type Manifest,
  type ManifestEntry,
  parseManifest,
  symlinkTargetProblem,
  volumePathProblem,
} from '../src/index.js';
import { makeManifest } from '../src/manifest.js';

const limits = compileLimits({});

function dir(path: string): ManifestEntry {
  return { path, type: 'directory', size: 0, mode: 0o755, uid: 0, gid: 0, mtimeMs: 1 };
}
function file(path: string, sha = 'a'.repeat(64), size = 1): ManifestEntry {
  return { path, type: 'file', size, mode: 0o644, uid: 0, gid: 0, mtimeMs: 1, sha256: sha };
}
function link(path: string, target: string): ManifestEntry {
  return { path, type: 'symlink', size: 0, mode: 0o777, uid: 0, gid: 0, mtimeMs: 1, target };
}

test('volume paths have one spelling and stay inside', () => {
  for (const ok of ['.', 'a', 'a/b', 'naïve/☕', '.hidden', 'a..b'])
    assert.equal(volumePathProblem(ok, limits), undefined, ok);
  const refused: Record<string, RegExp> = {
    '': /empty/,
    '/etc/passwd': /absolute/,
    '../x': /'\.\.'/,
    'a/../../x': /'\.\.'/,
    'a/..': /'\.\.'/,
    './a': /not canonical/,
    'a//b': /not canonical/,
    'a/': /not canonical/,
    'a\0b': /NUL/,
    [`${'x'.repeat(256)}`]: /component longer/,
    [`${'abcdefgh/'.repeat(500)}x`]: /path longer/,
  };
  for (const [path, reason] of Object.entries(refused))
    assert.match(volumePathProblem(path, limits) ?? '', reason, path);
});

test("symlink targets are judged from the link's own folder, and chains through other links too", () => {
  assert.equal(symlinkTargetProblem('a/b/link', '../../x', limits), undefined);
  assert.match(symlinkTargetProblem('a/b/link', '../../../x', limits) ?? '', /leaves the volume/);
  assert.match(symlinkTargetProblem('link', '/etc', limits) ?? '', /absolute/);
  assert.match(symlinkTargetProblem('link', '', limits) ?? '', /empty/);

  const chain = [dir('.'), dir('a'), link('a/up', '..'), link('x', 'a/up/..')];
  assert.equal(findEscapingSymlink(chain)?.path, 'x');
  const deeper = [dir('.'), dir('d'), dir('d/e'), link('d/e/top', '../..'), link('y', 'd/e/top/d/e/top/..')];
  assert.equal(findEscapingSymlink(deeper)?.path, 'y');
  const fine = [dir('.'), dir('d'), dir('d/e'), link('d/e/top', '../..'), link('z', 'd/e/top/d')];
  assert.equal(findEscapingSymlink(fine), undefined);
  const loop = [dir('.'), link('l1', 'l2'), link('l2', 'l1')];
  assert.equal(findEscapingSymlink(loop)?.path, 'l1', 'a loop is refused rather than followed forever');
});

test('a manifest from elsewhere is checked: structure, paths, symlink chains, its id', () => {
  const manifest = makeManifest([dir('.'), dir('a'), file('a/f'), link('l', 'a/f')]);
  const copy = JSON.parse(JSON.stringify(manifest)) as Manifest;
  assert.equal(parseManifest(copy, limits).id, manifest.id);

  const tampered = JSON.parse(JSON.stringify(manifest)) as Manifest;
  (tampered.entries[2] as ManifestEntry).sha256 = 'b'.repeat(64);
  assert.throws(() => parseManifest(tampered, limits), /id does not match/);

  const orphan = makeManifest([dir('.'), file('missing/f')]);
  assert.throws(() => parseManifest(orphan, limits), /not inside a directory listed before it/);
  const duplicate = makeManifest([dir('.'), file('f'), file('f')]);
  assert.throws(() => parseManifest(duplicate, limits), /duplicate/);
  const escaping = makeManifest([dir('.'), dir('a'), link('a/up', '..'), link('x', 'a/up/..')]);
  assert.throws(() => parseManifest(escaping, limits), /resolves outside/);
  const suid = makeManifest([dir('.'), { ...file('s'), mode: 0o4755 }]);
  assert.throws(() => parseManifest(suid, limits), /setuid/);
  const big = makeManifest([dir('.'), file('f', 'c'.repeat(64), 10)]);
  assert.throws(() => parseManifest(big, compileLimits({ maxTotalBytes: 5 })), /more than 5 bytes/);
  assert.throws(
    () => parseManifest({ ...copy, extra: true, entries: [{ ...dir('.'), x: 1 }] }, limits),
    /unknown field/,
  );
});

test('a diff names what was added, changed and deleted (deepest first)', () => {
  const before = makeManifest([dir('.'), dir('a'), file('a/one'), file('a/two'), dir('gone'), file('gone/x')]);
  const after = makeManifest([dir('.'), dir('a'), file('a/one', 'd'.repeat(64)), file('a/two'), file('new')]);
  assert.deepEqual(diffManifests(before, after), {
    added: ['new'],
    changed: ['a/one'],
    deleted: ['gone/x', 'gone'],
    unchanged: 3,
  });
});
