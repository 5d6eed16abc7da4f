import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { InvalidConfigError } from '@service-foundry/core';
import { tempDirFor } from '@service-foundry/test-support';
import { findDebianMirror, parseDeb822Sources, parseOneLineSources } from '../src/debian-mirror.js';

// As Debian's cloud images ship it: main suites and security on different stanzas.
const debianSources = `Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.example.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.example.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
`;

test('deb822: the URI of the deb stanza whose Suites list bookworm', () => {
  assert.equal(parseDeb822Sources(debianSources, 'bookworm'), 'http://deb.example.org/debian');
  assert.equal(parseDeb822Sources(debianSources, 'bookworm-security'), 'http://deb.example.org/debian-security');
  assert.equal(parseDeb822Sources(debianSources, 'trixie'), undefined);
});

test('deb822: skips deb-src only and disabled stanzas, non-http URIs, and handles CRLF and continuations', () => {
  const text = [
    'Types: deb-src',
    'URIs: http://src.example.org/debian',
    'Suites: bookworm',
    '',
    'Enabled: no',
    'Types: deb',
    'URIs: http://disabled.example.org/debian',
    'Suites: bookworm',
    '',
    'Types: deb deb-src',
    'URIs: cdrom:[Debian]/ file:/srv/mirror',
    '  https://mirror.example.net/debian/',
    'Suites: bookworm',
    'Components: main',
  ].join('\r\n');
  assert.equal(parseDeb822Sources(text, 'bookworm'), 'https://mirror.example.net/debian/');
});

test('deb822: field names are case-insensitive', () => {
  const text = 'types: deb\nuris: http://lower.example.org/debian\nsuites: bookworm\ncomponents: main\n';
  assert.equal(parseDeb822Sources(text, 'bookworm'), 'http://lower.example.org/debian');
});

test('one-line sources: deb lines with and without options, comments and other suites ignored', () => {
  const text = [
    '# deb http://commented.example.org/debian bookworm main',
    'deb-src http://src.example.org/debian bookworm main',
    'deb http://other.example.org/debian bullseye main',
    'deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] http://mirror.example.org/debian bookworm main contrib',
    'deb http://late.example.org/debian bookworm main',
  ].join('\n');
  assert.equal(parseOneLineSources(text, 'bookworm'), 'http://mirror.example.org/debian');
  assert.equal(
    parseOneLineSources('deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main', 'bookworm'),
    undefined,
  );
});

async function aptDir(t: { after: (fn: () => Promise<void>) => void }, files: Record<string, string>): Promise<string> {
  const dir = await tempDirFor(t, 'sf-apt-test');
  await mkdir(join(dir, 'sources.list.d'));
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  return dir;
}

test('findDebianMirror: sources.list.d/*.sources first, without a trailing slash', async (t) => {
  const dir = await aptDir(t, {
    'sources.list.d/debian.sources': debianSources.replace('example.org/debian\n', 'example.org/debian/\n'),
    'sources.list.d/other.sources.disabled': 'Types: deb\nURIs: http://x.example.org\nSuites: bookworm\n',
    'sources.list': 'deb http://fallback.example.org/debian bookworm main\n',
  });
  assert.equal(await findDebianMirror({ aptDir: dir, env: {} }), 'http://deb.example.org/debian');
});

test('findDebianMirror: falls back to sources.list', async (t) => {
  const dir = await aptDir(t, {
    'sources.list.d/google.list': 'deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main\n',
    'sources.list': 'deb http://fallback.example.org/debian bookworm main\n',
  });
  assert.equal(await findDebianMirror({ aptDir: dir, env: {} }), 'http://fallback.example.org/debian');
});

test('findDebianMirror: SF_DEBIAN_MIRROR wins and is validated', async (t) => {
  const dir = await aptDir(t, { 'sources.list': 'deb http://fallback.example.org/debian bookworm main\n' });
  const env = { SF_DEBIAN_MIRROR: 'http://proxy.example.org:3142/debian/' };
  assert.equal(await findDebianMirror({ aptDir: dir, env }), 'http://proxy.example.org:3142/debian');
  await assert.rejects(findDebianMirror({ aptDir: dir, env: { SF_DEBIAN_MIRROR: 'ftp://old.example.org' } }), {
    name: 'InvalidConfigError',
    message: /SF_DEBIAN_MIRROR.*not an http\(s\) URL/,
  });
  await assert.rejects(
    findDebianMirror({ aptDir: dir, env: { SF_DEBIAN_MIRROR: 'http://user:pw@proxy.example.org/debian' } }),
    /credentials/,
  );
});

test('findDebianMirror: a clear error when no source names the suite', async (t) => {
  const dir = await aptDir(t, { 'sources.list': 'deb http://other.example.org/debian bullseye main\n' });
  await assert.rejects(findDebianMirror({ aptDir: dir, env: {} }), (error: unknown) => {
    assert.ok(error instanceof InvalidConfigError);
    assert.match(error.message, /no "deb" source for suite bookworm.*set SF_DEBIAN_MIRROR/);
    return true;
  });
});

test('findDebianMirror: this machine has one (the base image build depends on it)', async () => {
  const mirror = await findDebianMirror();
  assert.match(mirror, /^https?:\/\/[^/]+/);
});
