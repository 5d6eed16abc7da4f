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

/** How the event loop fared while `work` ran: its longest stall and how long the work took, in ms. */
async function loopDuring(work: () => Promise<unknown>): Promise<{ stallMs: number; tookMs: number }> {
  const started = performance.now();
  let last = started;
  let stallMs = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    stallMs = Math.max(stallMs, now - last);
    last = now;
  }, 1);
  try {
    await work();
  } finally {
    clearInterval(timer);
  }
  // A walk that never let the timer run is one stall from start to end.
  stallMs = Math.max(stallMs, performance.now() - last);
  return { stallMs, tookMs: performance.now() - started };
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
  const scan = await loopDuring(async () => {
    scanned = (await scanTree(volume)).entries.length;
  });
  assert.equal(scanned, 1 + folders + folders * filesPerFolder);
  const manifest = await buildManifest(volume);
  const staging = join(root, 'staging');
  const link = await loopDuring(() => linkCopy(volume, staging, manifest, false));
  let cacheSize = 0;
  const verify = await loopDuring(async () => {
    const cache = await verifyTree(staging, manifest, false);
    cacheSize = cache.size;
  });
  assert.equal(cacheSize, folders * filesPerFolder, 'the verification checked every file');
  // Each walk makes 20,000+ calls in 4 ms slices. A loaded machine may preempt the process
  // for tens of ms whatever it runs, so the bound is relative: a walk in one piece (no
  // slices) stalls the loop for its whole duration.
  for (const [what, walk] of Object.entries({ scan, link, verify })) {
    assert.ok(
      walk.stallMs < Math.max(20, walk.tookMs / 4),
      `${what} held the event loop for ${walk.stallMs.toFixed(1)} ms of its ${walk.tookMs.toFixed(0)} ms`,
    );
  }
});
