import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidConfigError } from '@service-foundry/core';

/**
 * The Debian mirror comes from the machine's own apt configuration (or `SF_DEBIAN_MIRROR`),
 * never from the repository: every site has its own mirror or proxy, and the base image
 * and the `apt-get install` of each service build must use the one this machine can reach.
 */

/** Environment variable that overrides the mirror found in the apt configuration. */
export const mirrorEnvVar = 'SF_DEBIAN_MIRROR';

export interface FindDebianMirrorOptions {
  /** Suite whose `deb` source names the mirror. @default 'bookworm' */
  suite?: string;
  /** Where the apt configuration lives. @default '/etc/apt' */
  aptDir?: string;
  /** Environment consulted for `SF_DEBIAN_MIRROR`. @default process.env */
  env?: Record<string, string | undefined>;
}

/** Checks a mirror URL and returns it without trailing slashes. */
export function normalizeMirrorUrl(raw: string, where: string): string {
  let url: URL;
  try {
    url = new URL(raw.trim());
  } catch {
    throw new InvalidConfigError('Debian mirror', [`${where}: ${JSON.stringify(raw)} is not a URL`]);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new InvalidConfigError('Debian mirror', [`${where}: ${JSON.stringify(raw)} is not an http(s) URL`]);
  }
  if (url.username || url.password) {
    // A mirror with credentials would end up in the image's /etc/apt/sources.list.
    throw new InvalidConfigError('Debian mirror', [`${where}: mirror URLs with credentials are not supported`]);
  }
  return url.href.replace(/\/+$/, '');
}

function isHttpUri(uri: string): boolean {
  return /^https?:\/\//i.test(uri);
}

/**
 * The first http(s) URI of an enabled `Types: deb` stanza listing `suite` in a deb822
 * `.sources` file (see sources.list(5)).
 */
export function parseDeb822Sources(text: string, suite: string): string | undefined {
  const stanzas = text.replace(/\r\n/g, '\n').split(/\n[ \t]*\n/);
  for (const stanza of stanzas) {
    const fields = new Map<string, string>();
    let current: string | undefined;
    for (const rawLine of stanza.split('\n')) {
      const line = rawLine.replace(/\r$/, '');
      if (line.startsWith('#') || line.trim() === '') continue;
      if (/^[ \t]/.test(line) && current) {
        // A continuation line belongs to the previous field.
        fields.set(current, `${fields.get(current) ?? ''} ${line.trim()}`);
        continue;
      }
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      current = line.slice(0, colon).trim().toLowerCase();
      fields.set(current, line.slice(colon + 1).trim());
    }
    const words = (name: string) => (fields.get(name) ?? '').split(/[ \t]+/).filter(Boolean);
    if (/^(no|false|0)$/i.test(fields.get('enabled') ?? '')) continue;
    if (!words('types').includes('deb')) continue;
    if (!words('suites').includes(suite)) continue;
    const uri = words('uris').find(isHttpUri);
    if (uri) return uri;
  }
  return undefined;
}

/**
 * The URI of the first `deb` line for `suite` in one-line-style sources (sources.list),
 * options in brackets allowed: `deb [arch=amd64 signed-by=…] http://mirror/debian bookworm main`.
 */
export function parseOneLineSources(text: string, suite: string): string | undefined {
  for (const rawLine of text.split('\n')) {
    const line = rawLine.replace(/#.*$/, '').trim();
    if (!line) continue;
    const withoutOptions = line.replace(/\[[^\]]*\]/, ' ');
    const [type, uri, lineSuite] = withoutOptions.split(/[ \t]+/);
    if (type === 'deb' && uri && isHttpUri(uri) && lineSuite === suite) return uri;
  }
  return undefined;
}

async function readIfExists(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

async function listDir(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).sort();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
}

/**
 * The Debian mirror to debootstrap from and to bake into the base image's sources.list:
 * `SF_DEBIAN_MIRROR` if set, else the first matching source of `sources.list.d/*.sources`,
 * `sources.list.d/*.list`, then `sources.list` (apt's own reading order).
 */
export async function findDebianMirror(options: FindDebianMirrorOptions = {}): Promise<string> {
  const suite = options.suite ?? 'bookworm';
  const aptDir = options.aptDir ?? '/etc/apt';
  const env = options.env ?? process.env;
  const override = env[mirrorEnvVar];
  if (override !== undefined && override.trim() !== '') return normalizeMirrorUrl(override, mirrorEnvVar);

  const partsDir = join(aptDir, 'sources.list.d');
  const candidates: { file: string; parse: (text: string, suite: string) => string | undefined }[] = [];
  for (const name of await listDir(partsDir)) {
    if (name.endsWith('.sources')) candidates.push({ file: join(partsDir, name), parse: parseDeb822Sources });
    else if (name.endsWith('.list')) candidates.push({ file: join(partsDir, name), parse: parseOneLineSources });
  }
  candidates.push({ file: join(aptDir, 'sources.list'), parse: parseOneLineSources });

  for (const { file, parse } of candidates) {
    const text = await readIfExists(file);
    const uri = text === undefined ? undefined : parse(text, suite);
    if (uri) return normalizeMirrorUrl(uri, file);
  }
  throw new InvalidConfigError('Debian mirror', [
    `no "deb" source for suite ${suite} in ${partsDir}/*.sources, *.list or ${join(aptDir, 'sources.list')}; set ${mirrorEnvVar}`,
  ]);
}
