import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempDirFor } from '@service-foundry/test-support';
import { buildManifest } from '../src/index.js';
import { linkCopy } from '../src/link-copy.js';
import { scanTree } from '../src/scan.js';
import { verifyTree } from '../src/verify-tree.js';

const folders = 40;
const filesPerFolder = 500;

/** The longest time between two turns of the event loop while `work` runs, in ms. */
async function longestStall(work: () => Promise<unknown>): Promise<number> {
  let last = performance.now();
  let longest = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
  }, 1);
  try {
    await work();
  } finally {
    clearInterval(timer);
  }
  // A walk that never let the timer run is one stall from start to end.
  return Math.max(longest, performance.now() - last);
}

test('walking a 20,000-entry volume leaves the event loop free: scan, link copy and verification', async (t) => {
  const root = await tempDirFor(t, 'sf-volumes');
  const volume = join(root, 'volume');
  for (let d = 0; d < folders; d++) {
    await mkdir(join(volume, `d${d}`), { recursive: true });
    await Promise.all(
      Array.from({ length: filesPerFolder }, (_, i) => writeFile(join(volume, `d${d}`, `f${i}`), `${d}/${i}`)),
    );
  }
  let scanned = 0;
  const started = performance.now();
  const scanStall = await longestStall(async () => {
    scanned = (await scanTree(volume)).entries.length;
  });
  const scanMs = performance.now() - started;
  assert.equal(scanned, 1 + folders + folders * filesPerFolder);
  const manifest = await buildManifest(volume);
  const staging = join(root, 'staging');
  const linkStall = await longestStall(() => linkCopy(volume, staging, manifest, false));
  let cacheSize = 0;
  const verifyStall = await longestStall(async () => {
    const cache = await verifyTree(staging, manifest, false);
    cacheSize = cache.size;
  });
  assert.equal(cacheSize, folders * filesPerFolder, 'the verification checked every file');
  // Each walk makes 20,000+ calls; a slice is 4 ms. 50 ms leaves room for a loaded machine,
  // and is far below what one unbroken walk of this size holds the loop for.
  for (const [what, stall] of Object.entries({ scan: scanStall, linkCopy: linkStall, verify: verifyStall })) {
    assert.ok(stall < 50, `${what} held the event loop for ${stall.toFixed(1)} ms (scan took ${scanMs.toFixed(0)} ms)`);
  }
});
