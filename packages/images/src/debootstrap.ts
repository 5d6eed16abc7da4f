import { spawn } from 'node:child_process';
import { mkdir, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ProcessError } from '@service-foundry/core';

/** Runs a command, handing each output line (stdout and stderr) to `onLine`. */
function run(command: string, args: string[], onLine: (line: string) => void, signal?: AbortSignal): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...(signal ? { signal } : {}) });
    for (const output of [child.stdout, child.stderr]) createInterface({ input: output }).on('line', onLine);
    child.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') {
        reject(new ProcessError(`${command} is not installed (Debian: apt-get install ${command})`, null));
      } else {
        reject(new ProcessError(`${command} failed to start: ${error.message}`, null));
      }
    });
    child.once('close', (code) => resolve(code ?? -1));
  });
}

/**
 * debootstrap prints four lines per package (~450 in all, the phases interleaved); the
 * user wants the phases. Returns the line to show, or undefined to stay quiet.
 */
export function debootstrapProgressFilter(): (line: string) => string | undefined {
  const seenPhases = new Set<string>();
  return (line) => {
    const perPackage = /^I: (Retrieving|Validating|Extracting|Unpacking|Configuring) /.exec(line);
    if (!perPackage) return line.trim() ? `debootstrap: ${line.trim()}` : undefined;
    const phase = perPackage[1] ?? '';
    if (seenPhases.has(phase)) return undefined;
    seenPhases.add(phase);
    return `debootstrap: ${phase} packages…`;
  };
}

export interface DebootstrapOptions {
  executable: string;
  suite: string;
  mirror: string;
  dir: string;
  onProgress: (line: string) => void;
  signal?: AbortSignal;
}

/** `debootstrap --variant=minbase SUITE DIR MIRROR` (needs root: it chroots and mknods). */
export async function debootstrap(options: DebootstrapOptions): Promise<void> {
  if (process.getuid?.() !== 0) {
    throw new ProcessError('building the base image runs debootstrap, which needs root', null);
  }
  const filter = debootstrapProgressFilter();
  const recent: string[] = [];
  const code = await run(
    options.executable,
    ['--variant=minbase', options.suite, options.dir, options.mirror],
    (line) => {
      recent.push(line);
      if (recent.length > 20) recent.shift();
      const shown = filter(line);
      if (shown) options.onProgress(shown);
    },
    options.signal,
  );
  if (code !== 0) {
    const log = await readFile(join(options.dir, 'debootstrap', 'debootstrap.log'), 'utf8').catch(() => '');
    const tail = [...recent, ...log.trim().split('\n').slice(-10)].filter(Boolean).join('\n  ');
    throw new ProcessError(`debootstrap exited with code ${code}:\n  ${tail}`, code);
  }
}

/** Emptied after debootstrap: ~125 MB that no container needs. */
const trimmedDirs = [
  'usr/share/doc',
  'usr/share/man',
  'usr/share/info',
  'usr/share/locale',
  'var/lib/apt/lists',
  'var/cache/apt',
  'var/log/apt',
];

/** The host's identity must not end up in the image; Docker supplies both at run time. */
const hostFiles = ['etc/hostname', 'etc/resolv.conf'];

const dpkgExcludes = `# Service Foundry: images carry no documentation, man pages or translations.
path-exclude=/usr/share/doc/*
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
`;

const aptSettings = `// Service Foundry: small images.
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
`;

/** Removes docs, man pages, translations and apt caches, and keeps later installs from adding them back. */
export async function trimRootfs(dir: string): Promise<void> {
  for (const relative of trimmedDirs) {
    const path = join(dir, relative);
    await rm(path, { recursive: true, force: true });
    await mkdir(path, { recursive: true });
  }
  await rm(join(dir, 'var/cache/debconf/templates.dat-old'), { force: true });
  await mkdir(join(dir, 'var/lib/apt/lists/partial'), { recursive: true });
  for (const relative of hostFiles) await rm(join(dir, relative), { force: true });
  await writeFile(join(dir, 'etc/dpkg/dpkg.cfg.d/90service-foundry-nodoc'), dpkgExcludes);
  await writeFile(join(dir, 'etc/apt/apt.conf.d/90service-foundry'), aptSettings);
}

/** Mount points at or below `dir`, deepest first (mountinfo escapes blanks as octal). */
async function mountsUnder(dir: string): Promise<string[]> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  const points = info
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((point): point is string => point !== undefined)
    .map((point) =>
      point.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8))),
    )
    .filter((point) => point === dir || point.startsWith(`${dir}/`));
  return points.sort((a, b) => b.length - a.length);
}

/**
 * Deletes a debootstrap root. A debootstrap killed half way can leave /proc, /sys or a
 * bind-mounted /dev mounted inside it; deleting through such a mount would delete the
 * host's files, so everything is unmounted first and nothing is deleted if that fails.
 */
export async function removeRootfs(dir: string): Promise<void> {
  let real: string;
  try {
    real = await realpath(dir);
  } catch {
    return;
  }
  for (const point of await mountsUnder(real)) {
    await run('umount', ['-l', point], () => {});
  }
  const left = await mountsUnder(real);
  if (left.length > 0) {
    throw new ProcessError(`not deleting ${real}: still mounted inside it: ${left.join(', ')}`, null);
  }
  await rm(real, { recursive: true, force: true });
}
