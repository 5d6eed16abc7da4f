import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The uid of Debian's `nobody`: a local user with no business with the platform. */
export const nobody = 65534;

export interface Outcome {
  ok: boolean;
  out: string;
}

/** Runs a command as another local user (setpriv drops root for good before exec). */
export async function asLocalUser(uid: number, command: string, args: string[]): Promise<Outcome> {
  try {
    const { stdout, stderr } = await run(
      'setpriv',
      [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', '--', command, ...args],
      { timeout: 20_000 },
    );
    return { ok: true, out: `${stdout}${stderr}` };
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; message: string };
    return { ok: false, out: `${e.stdout ?? ''}${e.stderr ?? e.message}` };
  }
}

/** What any process on the machine shows to root: environment and command line of every pid. */
export async function processTexts(): Promise<Array<{ pid: string; text: string }>> {
  const texts: Array<{ pid: string; text: string }> = [];
  for (const pid of (await readdir('/proc')).filter((p) => /^\d+$/.test(p))) {
    const read = (file: string) => readFile(join('/proc', pid, file), 'utf8').catch(() => '');
    texts.push({ pid, text: `${await read('environ')}\n${await read('cmdline')}` });
  }
  return texts;
}
