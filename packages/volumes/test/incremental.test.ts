import assert from 'node:assert/strict';
import { appendFile, chmod, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { tempDirFor } from '@service-foundry/test-support';
import { buildManifest, diffManifests, pullSnapshot } from '../src/index.js';
import { fingerprint, outlastRacyWindow, randomContent, startTestServer, testSecret, writeFiles } from './helpers.js';

/** 100 files of 64 KiB in 10 folders, and one 8 MiB file. */
async function makeVolume(dir: string): Promise<void> {
  const files: Record<string, Buffer> = { 'big.bin': randomContent(8 * 1024 * 1024) };
  for (let i = 0; i < 100; i++) files[`dir${i % 10}/file${i}`] = randomContent(64 * 1024);
  files['doomed/inner/one'] = randomContent(1000);
  files['doomed/two'] = randomContent(1000);
  await writeFiles(dir, files);
}

/** A volume served as `data`, and where its copy goes. */
async function servedVolume(t: TestContext) {
  const root = await tempDirFor(t, 'sf-volumes');
  const source = join(root, 'source');
  await makeVolume(source);
  const secret = testSecret();
  const server = await startTestServer(t, secret, { data: source });
  return { root, source, secret, server, into: join(root, 'copy') };
}

/** Tar framing and control entries of a delta: a few KiB per entry plus the manifest. */
const overheadAllowance = 64 * 1024;

test('a pull after changes sends only the changed files and applies the deletions', async (t) => {
  const { root, source, secret, server, into } = await servedVolume(t);
  await outlastRacyWindow();
  const full = await pullSnapshot({ url: server.url, secret, name: 'data', into, fsync: false });
  assert.equal(full.mode, 'full');
  // A second full copy (another standby) must not make the sender forget what it knows.
  const other = await pullSnapshot({ url: server.url, secret, name: 'data', into: join(root, 'other'), fsync: false });
  assert.equal(other.manifestId, full.manifestId);
  const before = await buildManifest(source);

  // Change two files in place, add one, delete a file and a whole folder, change a mode.
  const changed = randomContent(64 * 1024);
  await writeFile(join(source, 'dir3/file13'), changed);
  await appendFile(join(source, 'big.bin'), randomContent(4096));
  await writeFiles(source, { 'dir7/new-file': randomContent(10_000) });
  await rm(join(source, 'dir1/file21'));
  await rm(join(source, 'doomed'), { recursive: true });
  await chmod(join(source, 'dir5/file45'), 0o600);
  const after = await buildManifest(source);
  const diff = diffManifests(before, after);
  assert.deepEqual(diff.deleted, ['doomed/two', 'doomed/inner/one', 'doomed/inner', 'doomed', 'dir1/file21']);

  await outlastRacyWindow();
  const delta = await pullSnapshot({ url: server.url, secret, name: 'data', into, fsync: false });
  const changedBytes = 64 * 1024 + (8 * 1024 * 1024 + 4096) + 10_000 + 64 * 1024;
  assert.equal(delta.mode, 'delta');
  assert.equal(delta.base, full.manifestId);
  assert.equal(delta.files, 4, 'file13, big.bin, new-file and file45 (mode change)');
  assert.equal(delta.bytes, changedBytes, 'content bytes are exactly the changed files');
  assert.ok(
    delta.wireBytes >= changedBytes && delta.wireBytes < changedBytes + overheadAllowance,
    `wire ${delta.wireBytes}`,
  );
  assert.equal(delta.deleted, 5);
  assert.equal(delta.manifestId, after.id);
  assert.equal(await fingerprint(into, { dirMtimes: true }), await fingerprint(source, { dirMtimes: true }));

  // Nothing changed: nothing but framing moves.
  const idle = await pullSnapshot({ url: server.url, secret, name: 'data', into, fsync: false });
  assert.equal(idle.mode, 'delta');
  assert.equal(idle.files, 0);
  assert.equal(idle.bytes, 0);
  assert.ok(idle.wireBytes < overheadAllowance, `wire ${idle.wireBytes}`);
  assert.equal(idle.manifestId, after.id);

  const sent = server.events.filter((e) => e.direction === 'sent');
  assert.deepEqual(
    sent.map((e) => [e.mode, e.bytes]),
    [
      ['full', full.bytes],
      ['full', full.bytes],
      ['delta', changedBytes],
      ['delta', 0],
    ],
  );
});

test("a copy changed behind the receiver's back is replaced by a full copy, not patched", async (t) => {
  const { source, secret, server, into } = await servedVolume(t);
  await pullSnapshot({ url: server.url, secret, name: 'data', into, fsync: false });

  await writeFile(join(into, 'dir0/file0'), 'tampered');
  await writeFiles(into, { 'stray-file': 'not from the source' });
  const again = await pullSnapshot({ url: server.url, secret, name: 'data', into, fsync: false });
  assert.equal(again.mode, 'full', 'the peer does not know the drifted copy');
  assert.equal(await fingerprint(into, { dirMtimes: true }), await fingerprint(source, { dirMtimes: true }));
});

test('a sender that no longer knows the copy sends it whole, and the staging made for a delta is dropped', async (t) => {
  const { source, secret, server, into } = await servedVolume(t);
  await outlastRacyWindow();
  const first = await pullSnapshot({ url: server.url, secret, name: 'data', into, fsync: false });
  // The sender forgets every manifest it kept (as after the four-manifest window moved on).
  await rm(join(`${source}.sf-transfer`, 'manifests'), { recursive: true });
  await writeFile(join(source, 'dir2/file12'), randomContent(64 * 1024));
  await outlastRacyWindow();

  const again = await pullSnapshot({ url: server.url, secret, name: 'data', into, fsync: false });
  assert.equal(again.mode, 'full');
  assert.notEqual(again.manifestId, first.manifestId);
  assert.equal(await fingerprint(into, { dirMtimes: true }), await fingerprint(source, { dirMtimes: true }));
  assert.deepEqual(await readdir(`${into}.sf-transfer`).then((names) => names.filter((n) => n === 'staging')), []);
  // And the next pull is a delta again.
  const idle = await pullSnapshot({ url: server.url, secret, name: 'data', into, fsync: false });
  assert.equal(idle.mode, 'delta');
  assert.equal(idle.files, 0);
});
