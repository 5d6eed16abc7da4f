import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { BackupView } from '@service-foundry/api';
import type { RelocationRecord } from '@service-foundry/core';
import { backupSummary } from '../src/commands/backups.js';
import { relocationSummary } from '../src/commands/relocate.js';
import { formatBytes } from '../src/format.js';
import { ProgressDisplay, renderProgressLine } from '../src/progress-display.js';

const precopy = {
  label: 'pre-copy',
  bytes: 512_000_000,
  plannedBytes: 1_070_000_000,
  files: 1020,
  plannedFiles: 2048,
  mbPerSecond: 231,
};

/** A stream that records what the display writes. */
function recorder(isTTY: boolean) {
  const chunks: string[] = [];
  return { chunks, stream: { isTTY, columns: 100, write: (chunk: string) => chunks.push(chunk) } };
}

describe('cli: transfer progress line', () => {
  it('renders bar, sizes, percent, rate and files in one line', () => {
    const expected = 'pre-copy [#####.....] 512.0 MB / 1.07 GB  48%  231 MB/s  1020/2048 files';
    assert.equal(renderProgressLine({ ...precopy, width: expected.length }), expected);
    const wide = renderProgressLine({ ...precopy, width: 120 });
    assert.match(wide, /^pre-copy \[#{14}\.{16}\] 512\.0 MB/, 'the bar grows to 30 cells at most');
    assert.ok(wide.length <= 120);
  });

  it('leaves out the bar without a plan or room, and never exceeds the width', () => {
    assert.equal(
      renderProgressLine({ label: 'backup', bytes: 48_200_000, files: 1203, mbPerSecond: 40, width: 80 }),
      'backup 48.2 MB  40 MB/s  1203 files',
    );
    const narrow = renderProgressLine({ ...precopy, width: 40 });
    assert.equal(narrow.length, 40);
    assert.ok(!narrow.includes('['), narrow);
    const done = renderProgressLine({ ...precopy, bytes: precopy.plannedBytes, width: 200 });
    assert.match(done, /\[#{30}\] 1\.07 GB \/ 1\.07 GB {2}100%/);
    const almost = renderProgressLine({ ...precopy, bytes: precopy.plannedBytes - 1, width: 200 });
    assert.match(almost, /#{29}\.\] .* 99%/, 'not 100% before the last byte');
  });

  it('formats sizes in decimal units like the transfer figures', () => {
    assert.deepEqual(
      [0, 999, 1000, 10_600_000, 48_200_000, 512_000_000, 999_960_000, 1_070_000_000, 2.5e12].map(formatBytes),
      ['0 B', '999 B', '1.00 kB', '10.6 MB', '48.2 MB', '512.0 MB', '1.00 GB', '1.07 GB', '2.50 TB'],
    );
  });

  it('redraws one line on a terminal, and logs each label and quarter elsewhere', () => {
    const tty = recorder(true);
    const onTerminal = new ProgressDisplay(tty.stream);
    onTerminal.bar({ ...precopy, bytes: 100_000_000 });
    onTerminal.bar(precopy);
    onTerminal.note('stopping the source on node-1');
    assert.equal(tty.chunks.length, 4);
    assert.ok(tty.chunks[0]?.startsWith('\r\x1b[Kpre-copy ['));
    assert.ok(!tty.chunks[1]?.includes('\n'), 'redrawn in place');
    assert.deepEqual(tty.chunks.slice(2), ['\r\x1b[K', 'stopping the source on node-1\n']);

    const log = recorder(false);
    const inLog = new ProgressDisplay(log.stream);
    for (const share of [0.05, 0.1, 0.3, 0.35, 0.6, 0.99, 1]) {
      inLog.bar({ ...precopy, bytes: Math.round(precopy.plannedBytes * share) });
    }
    inLog.bar({ ...precopy, label: 'final delta', bytes: 1, plannedBytes: 10_000_000 });
    assert.deepEqual(
      log.chunks.map((c) => /^(\S+(?: delta)?) .* (\d+)%/.exec(c)?.slice(1, 3).join(' ')),
      ['pre-copy 5', 'pre-copy 30', 'pre-copy 60', 'pre-copy 99', 'pre-copy 100', 'final delta 0'],
    );
    assert.ok(log.chunks.every((c) => c.endsWith('\n') && !c.includes('\r')));
  });

  it('shows a long wait as a status line with the time waited, and ends it with a line that stays', () => {
    const tty = recorder(true);
    const onTerminal = new ProgressDisplay(tty.stream);
    onTerminal.status('create pg1: in progress');
    onTerminal.status('create pg1: in progress');
    onTerminal.done('create pg1: succeeded');
    assert.equal(tty.chunks.length, 3);
    assert.ok(tty.chunks[0]?.startsWith('\r\x1b[K'), 'redrawn in place');
    assert.match(tty.chunks[0] ?? '', /create pg1: in progress \(\d+\.\d s\)$/);
    assert.ok(tty.chunks[2]?.startsWith('\r\x1b[K'));
    assert.match(tty.chunks[2] ?? '', /create pg1: succeeded \(\d+\.\d s\)\n$/);

    const log = recorder(false);
    const inLog = new ProgressDisplay(log.stream);
    for (const message of ['starting etcd', 'starting etcd', 'starting broker']) inLog.status(message);
    inLog.done('ready');
    assert.deepEqual(
      log.chunks.map((c) => c.replace(/ \(\d+\.\d s\)\n$/, '')),
      ['starting etcd', 'starting broker', 'ready'],
    );
  });
});

describe('cli: relocation and backup summaries', () => {
  it('sums up a relocation from its figures', () => {
    const figures = { wireBytes: 0, deleted: 0, files: 0 };
    const record: RelocationRecord = {
      instanceId: 'id-1',
      ordinal: 0,
      from: 'node-1',
      to: 'node-2',
      keepSource: false,
      phase: 'done',
      message: 'done',
      reason: 'operator',
      requestedBy: 'alice',
      requestedAt: '',
      updatedAt: '',
      precopy: { ...figures, mode: 'full', bytes: 1_070_000_000, durationMs: 4600, mbPerSecond: 233 },
      final: { ...figures, mode: 'delta', bytes: 10_600_000, durationMs: 300, mbPerSecond: 35 },
      downtimeMs: 840,
    };
    assert.equal(
      relocationSummary('pg1', record),
      'relocated pg1 replica 0 from node-1 to node-2: pre-copy 1.07 GB in 4.6 s (233 MB/s), final delta 10.6 MB in 0.3 s, downtime 0.84 s',
    );
  });

  it('sums up a backup with its method and node', () => {
    const record: BackupView = {
      id: 'b-20250102T030405-abcdef',
      instanceId: 'id-1',
      instanceName: 'pg1',
      serviceName: 'postgres',
      planName: 'small',
      state: 'completed',
      message: 'completed',
      requestedBy: 'alice',
      requestedAt: '',
      node: 'node-2',
      method: 'hook',
      hook: 'pg_basebackup',
      figures: {
        mode: 'full',
        bytes: 48_200_000,
        wireBytes: 0,
        files: 1203,
        deleted: 0,
        durationMs: 1200,
        mbPerSecond: 40,
      },
    };
    assert.equal(
      backupSummary(record),
      'backup b-20250102T030405-abcdef of pg1 completed: 48.2 MB, 1203 files in 1.2 s (hook: pg_basebackup) on node-2',
    );
  });
});
