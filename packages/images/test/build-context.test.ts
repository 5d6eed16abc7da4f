import assert from 'node:assert/strict';
import { chmod, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempDirFor } from '@service-foundry/test-support';
import { extract } from 'tar-stream';
import { splitTag } from '../src/base-image.js';
import { packBuildContext } from '../src/build-context.js';
import { debootstrapProgressFilter } from '../src/debootstrap.js';

async function contextDir(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const dir = await tempDirFor(t, 'sf-context-test');
  return dir;
}

async function listTar(
  stream: NodeJS.ReadableStream,
): Promise<Map<string, { type: string; mode: number; body: string }>> {
  const entries = new Map<string, { type: string; mode: number; body: string }>();
  const reader = extract();
  const done = (async () => {
    for await (const entry of reader) {
      const chunks: Buffer[] = [];
      for await (const chunk of entry) chunks.push(chunk as Buffer);
      entries.set(entry.header.name, {
        type: entry.header.type,
        mode: entry.header.mode,
        body: Buffer.concat(chunks).toString(),
      });
    }
  })();
  for await (const chunk of stream) reader.write(chunk as Buffer);
  reader.end(undefined);
  await done;
  return entries;
}

test('packBuildContext: files with their modes, folders and inner symlinks', async (t) => {
  const dir = await contextDir(t);
  await writeFile(join(dir, 'Dockerfile'), 'FROM scratch\n');
  await mkdir(join(dir, 'scripts'));
  await writeFile(join(dir, 'scripts', 'run.sh'), '#!/bin/sh\n');
  await chmod(join(dir, 'scripts', 'run.sh'), 0o755);
  await symlink('scripts/run.sh', join(dir, 'run'));
  const entries = await listTar(await packBuildContext(dir));
  assert.deepEqual([...entries.keys()].sort(), ['Dockerfile', 'run', 'scripts', 'scripts/run.sh']);
  assert.equal(entries.get('Dockerfile')?.body, 'FROM scratch\n');
  assert.equal(entries.get('scripts/run.sh')?.mode, 0o755);
  assert.equal(entries.get('scripts')?.type, 'directory');
  assert.equal(entries.get('run')?.type, 'symlink');
});

test('packBuildContext: refuses symlinks leaving the context and contexts without a Dockerfile', async (t) => {
  const dir = await contextDir(t);
  await assert.rejects(packBuildContext(dir), { name: 'InvalidInputError', message: /no Dockerfile/ });
  await writeFile(join(dir, 'Dockerfile'), 'FROM scratch\n');
  await symlink('../../etc/passwd', join(dir, 'escape'));
  await assert.rejects(packBuildContext(dir), { name: 'InvalidInputError', message: /escape points outside/ });
  await rm(join(dir, 'escape'));
  await symlink('/etc/passwd', join(dir, 'absolute'));
  await assert.rejects(packBuildContext(dir), { name: 'InvalidInputError', message: /absolute points outside/ });
});

test('splitTag: repository and tag, registry ports kept in the repository', () => {
  assert.deepEqual(splitTag('service-foundry/debian-base:bookworm'), {
    repo: 'service-foundry/debian-base',
    tag: 'bookworm',
  });
  assert.deepEqual(splitTag('registry.local:5000/pg'), { repo: 'registry.local:5000/pg', tag: 'latest' });
  assert.deepEqual(splitTag('registry.local:5000/pg:15'), { repo: 'registry.local:5000/pg', tag: '15' });
});

test('debootstrap progress: each phase once instead of four lines per package', () => {
  const filter = debootstrapProgressFilter();
  const lines = [
    'I: Retrieving InRelease ',
    'I: Checking Release signature',
    'I: Retrieving adduser 3.134',
    'I: Retrieving apt 2.6.1',
    'I: Validating adduser 3.134',
    'I: Validating apt 2.6.1',
    'I: Retrieving base-files 12.4',
    'I: Unpacking apt...',
    'I: Configuring apt...',
    'I: Unpacking base-files...',
    'I: Base system installed successfully.',
  ];
  assert.deepEqual(lines.map(filter).filter(Boolean), [
    'debootstrap: Retrieving packages…',
    'debootstrap: I: Checking Release signature',
    'debootstrap: Validating packages…',
    'debootstrap: Unpacking packages…',
    'debootstrap: Configuring packages…',
    'debootstrap: I: Base system installed successfully.',
  ]);
});
