import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Runs SQL with the real psql client; returns rows as tab-separated lines. */
export async function psql(uri: string, sql: string): Promise<{ ok: boolean; out: string; err: string }> {
  try {
    const { stdout, stderr } = await run(
      'psql',
      [uri, '-X', '-q', '-A', '-t', '-F', '\t', '-v', 'ON_ERROR_STOP=1', '-c', sql],
      {
        timeout: 30_000,
        env: { ...process.env, PGCONNECT_TIMEOUT: '10' },
      },
    );
    return { ok: true, out: stdout.trim(), err: stderr };
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string };
    return { ok: false, out: e.stdout ?? '', err: e.stderr ?? '' };
  }
}
