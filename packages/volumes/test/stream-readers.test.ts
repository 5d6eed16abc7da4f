import assert from 'node:assert/strict';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempDirFor } from '@service-foundry/test-support';
import { extract } from 'tar-stream';
import { compileTransferConfig } from '../src/config.js';
import { HttpResponseReader, type ResponseHead } from '../src/http-response-reader.js';
import { requestSnapshot } from '../src/snapshot-request.js';
import { type TarHeader, TarReader } from '../src/tar-reader.js';
import {
  packToBuffer,
  paxRecords,
  randomContent,
  startTestServer,
  testSecret,
  ustarHeader,
  writeFiles,
} from './helpers.js';

interface ReadEntry {
  header: TarHeader;
  content: Buffer;
}

/** Feeds `bytes` to a TarReader in pieces of `piece` bytes (from one reused buffer, as a socket would). */
function readTar(bytes: Buffer, piece: number): { entries: ReadEntry[]; ended: boolean; midEntry: boolean } {
  const entries: ReadEntry[] = [];
  let chunks: Buffer[] = [];
  const reader = new TarReader({
    entry: (header) => {
      chunks = [];
      entries.push({ header, content: Buffer.alloc(0) });
    },
    data: (buf, start, end) => chunks.push(Buffer.from(buf.subarray(start, end))),
    entryEnd: () => {
      const last = entries.at(-1);
      if (last) last.content = Buffer.concat(chunks);
    },
  });
  const reused = Buffer.alloc(piece);
  for (let at = 0; at < bytes.length; at += piece) {
    const length = bytes.copy(reused, 0, at, Math.min(bytes.length, at + piece));
    reader.push(reused, 0, length);
    reused.fill(0xee);
  }
  return { entries, ended: reader.ended, midEntry: reader.midEntry };
}

const longName = `${'deep/'.repeat(30)}file-with-a-long-name.bin`;
const big = randomContent(70_001);

async function sampleArchive(): Promise<Buffer> {
  return packToBuffer((p) => {
    p.entry({ name: 'dir', type: 'directory', mode: 0o750, mtime: new Date(1_700_000_000_000) });
    p.entry({ name: 'dir/small.txt', mode: 0o640, uid: 70, gid: 71, pax: { 'SF.mode': '640' } }, Buffer.from('hello'));
    p.entry({ name: 'dir/empty', size: 0 }, Buffer.alloc(0));
    p.entry({ name: longName }, big);
    p.entry({ name: 'dir/link', type: 'symlink', linkname: '../target' });
    p.entry({ name: 'dir/hard', type: 'link', linkname: 'dir/small.txt' });
    p.entry({ name: 'dir/uni-ø.txt' }, Buffer.from('ø'));
  });
}

/** What tar-stream's own extract makes of `archive`: the reference the reader must agree with. */
async function extractWithTarStream(archive: Buffer): Promise<ReadEntry[]> {
  const entries: ReadEntry[] = [];
  const extractor = extract();
  const done = (async () => {
    for await (const entry of extractor) {
      const chunks: Buffer[] = [];
      for await (const chunk of entry) chunks.push(chunk as Buffer);
      const h = entry.header;
      entries.push({
        header: {
          name: h.name,
          type: h.type as TarHeader['type'],
          size: h.size ?? 0,
          mode: h.mode ?? 0,
          uid: h.uid ?? 0,
          gid: h.gid ?? 0,
          mtime: h.mtime ?? new Date(0),
          linkname: h.linkname ?? null,
          pax: (h.pax as Record<string, string> | undefined) ?? null,
        },
        content: Buffer.concat(chunks),
      });
    }
  })();
  extractor.end(archive);
  await done;
  return entries;
}

test('the tar reader gives what tar-stream extracts from the same archive, in pieces of any size', async () => {
  const archive = await sampleArchive();
  const reference = await extractWithTarStream(archive);
  assert.deepEqual(
    reference.map((e) => e.header.type),
    ['directory', 'file', 'file', 'file', 'symlink', 'link', 'file'],
  );
  assert.ok(reference.some((e) => e.header.name === longName && e.content.equals(big)));
  for (const piece of [1, 7, 511, 512, 513, 4096, archive.length]) {
    const { entries, ended, midEntry } = readTar(archive, piece);
    assert.ok(ended, `pieces of ${piece}: end of archive seen`);
    assert.equal(midEntry, false);
    assert.deepEqual(entries, reference, `pieces of ${piece}`);
  }
});

test('the tar reader refuses corrupt headers and reports a stream cut inside an entry', async () => {
  const archive = await sampleArchive();
  const corrupt = Buffer.from(archive);
  corrupt[0] = (corrupt[0] ?? 0) ^ 1;
  assert.throws(() => readTar(corrupt, 512), /checksum does not match/);

  const foreign = ustarHeader('plain', 0);
  foreign.write('xxxxx\0', 257, 'latin1');
  foreign.fill(' ', 148, 156);
  foreign.write(
    `${foreign
      .reduce((sum, byte) => sum + byte, 0)
      .toString(8)
      .padStart(6, '0')}\0 `,
    148,
    'latin1',
  );
  assert.throws(() => readTar(foreign, 512), /neither ustar nor GNU/);

  assert.throws(() => readTar(Buffer.concat([ustarHeader('bad-pax', 8, 'x'), Buffer.alloc(512)]), 512), /pax record/);

  const cut = readTar(archive.subarray(0, archive.length - 40_000), 1000);
  assert.equal(cut.ended, false);
  assert.equal(cut.midEntry, true, 'stopped inside the long file');

  const gnuLong = Buffer.concat([ustarHeader('././@LongLink', 300, 'L'), Buffer.alloc(512, 'n'), ustarHeader('x', 0)]);
  const named = readTar(Buffer.concat([gnuLong, Buffer.alloc(1024)]), 100);
  assert.equal(named.entries[0]?.header.name, 'n'.repeat(300), 'GNU long name applied');

  const paxPath = Buffer.concat([paxRecords({ path: 'from/pax' }), ustarHeader('short', 0), Buffer.alloc(1024)]);
  assert.equal(readTar(paxPath, 3).entries[0]?.header.name, 'from/pax');
});

interface ReadAnswer {
  head: ResponseHead | undefined;
  body: Buffer;
  trailers: Record<string, string> | undefined;
}

function readHttp(bytes: Buffer, piece: number, close = false): ReadAnswer {
  const answer: ReadAnswer = { head: undefined, body: Buffer.alloc(0), trailers: undefined };
  const body: Buffer[] = [];
  const reader = new HttpResponseReader({
    head: (head) => {
      answer.head = head;
    },
    body: (buf, start, end) => body.push(Buffer.from(buf.subarray(start, end))),
    end: (trailers) => {
      answer.trailers = trailers;
    },
  });
  const reused = Buffer.alloc(piece);
  for (let at = 0; at < bytes.length; at += piece) {
    const length = bytes.copy(reused, 0, at, Math.min(bytes.length, at + piece));
    reader.push(reused, 0, length);
    reused.fill(0xee);
  }
  if (close) reader.close();
  answer.body = Buffer.concat(body);
  return answer;
}

function chunked(parts: Buffer[], trailers: string): Buffer {
  const framed = parts.flatMap((part) => [Buffer.from(`${part.length.toString(16)}\r\n`), part, Buffer.from('\r\n')]);
  return Buffer.concat([...framed, Buffer.from(`0\r\n${trailers}\r\n`)]);
}

test('the HTTP response reader frames chunked bodies with trailers, content-length and close, in any pieces', () => {
  const payload = [randomContent(3000), randomContent(1), randomContent(70_000)];
  const head =
    'HTTP/1.1 200 OK\r\ncontent-type: application/x-tar\r\nX-SF-Base: none\r\ntransfer-encoding: chunked\r\n\r\n';
  const withTrailers = Buffer.concat([Buffer.from(head), chunked(payload, 'x-sf-body-crc32: none\r\nx-sf-b: 1\r\n')]);
  const noTrailers = Buffer.concat([Buffer.from(head), chunked(payload, '')]);
  const interim = Buffer.concat([Buffer.from('HTTP/1.1 100 Continue\r\n\r\n'), withTrailers]);
  for (const piece of [1, 2, 5, 1000, withTrailers.length]) {
    for (const [what, bytes, trailers] of [
      ['trailers', withTrailers, { 'x-sf-body-crc32': 'none', 'x-sf-b': '1' }],
      ['no trailers', noTrailers, {}],
      ['after 100 Continue', interim, { 'x-sf-body-crc32': 'none', 'x-sf-b': '1' }],
    ] as const) {
      const read = readHttp(bytes, piece);
      assert.equal(read.head?.statusCode, 200, `${what}, pieces of ${piece}`);
      assert.equal(read.head?.headers['x-sf-base'], 'none');
      assert.ok(read.body.equals(Buffer.concat(payload)), `${what}, pieces of ${piece}: body`);
      assert.deepEqual(read.trailers, trailers, `${what}, pieces of ${piece}: trailers`);
    }
  }
  const json = '{"error":"busy"}';
  const sized = readHttp(Buffer.from(`HTTP/1.1 409 Conflict\r\ncontent-length: ${json.length}\r\n\r\n${json}`), 3);
  assert.equal(sized.head?.statusCode, 409);
  assert.equal(sized.body.toString(), json);
  assert.deepEqual(sized.trailers, {});
  const untilClose = readHttp(Buffer.from(`HTTP/1.0 500 Oops\r\n\r\n${json}`), 4, true);
  assert.equal(untilClose.body.toString(), json);
  assert.deepEqual(untilClose.trailers, {});
});

test('the HTTP response reader refuses what is not a well-formed answer', () => {
  const bad = [
    ['no status line', 'SSH-2.0-OpenSSH\r\n\r\n', /no HTTP\/1\.x status line/],
    ['bad chunk size', 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n', /bad chunk size/],
    [
      'chunk longer than said',
      'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\nab\r\n',
      /longer than its size/,
    ],
    ['other encoding', 'HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n', /transfer encoding "gzip"/],
    ['bad length', 'HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n', /content-length/],
    ['bytes after the end', 'HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nab', /after the end/],
    ['header without a name', 'HTTP/1.1 200 OK\r\n: x\r\n\r\n', /no name/],
  ] as const;
  for (const [what, text, reason] of bad) assert.throws(() => readHttp(Buffer.from(text), 3), reason, what);
  const endless = Buffer.from(`HTTP/1.1 200 OK\r\n${'x-pad: y\r\n'.repeat(8000)}`);
  assert.throws(() => readHttp(endless, 4096), /header section over/);
});

test('a snapshot request stops reading while its sink has no room, and the whole body still arrives', async (t) => {
  const root = await tempDirFor(t, 'sf-volumes');
  const source = join(root, 'source');
  await writeFiles(source, { 'a.bin': randomContent(6 * 1024 * 1024), 'b.bin': randomContent(3 * 1024 * 1024) });
  const secret = testSecret();
  const server = await startTestServer(t, secret, { data: source });
  const config = compileTransferConfig({ secret });
  const { answer } = requestSnapshot(config, server.url, '/volumes/data/snapshot?since=none&check=manifest');
  const response = await answer;
  assert.equal(response.statusCode, 200);
  // The sink is a slow consumer like the receiver's: what it took goes to a file with
  // fsync while it has no room.
  const spill = await open(join(root, 'spill'), 'w');
  t.after(() => spill.close());
  let pending: Buffer[] = [];
  let bytes = 0;
  let paused = false;
  let bytesWhilePaused = 0;
  let mostWhilePaused = 0;
  let pauses = 0;
  const trailers = await response.receive({
    push: (buf, start, end) => {
      pending.push(Buffer.from(buf.subarray(start, end)));
      bytes += end - start;
      if (paused) bytesWhilePaused += end - start;
      mostWhilePaused = Math.max(mostWhilePaused, bytesWhilePaused);
      // No room after every 256 KiB: the socket must stop until room() settles.
      if (bytes % (256 * 1024) < end - start) {
        paused = true;
        return false;
      }
      return true;
    },
    room: async () => {
      const batch = pending;
      pending = [];
      await spill.writev(batch);
      await spill.sync();
      pauses++;
      paused = false;
      bytesWhilePaused = 0;
    },
  });
  assert.ok(bytes > 9 * 1024 * 1024, `the whole body arrived (${bytes} bytes)`);
  assert.ok(pauses >= 5, `the reader waited for room (${pauses} times)`);
  // What is left of the read that said "no room", never a further read.
  assert.ok(mostWhilePaused <= 1024 * 1024, `at most one read after "no room" (${mostWhilePaused} bytes)`);
  assert.match(trailers['x-sf-body-signature'] ?? '', /^[0-9a-f]{64}$/);
});
