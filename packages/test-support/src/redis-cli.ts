import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { clusterCaFile } from './cluster-ca.js';

const run = promisify(execFile);

/** What a Redis service key holds (the fields redis-cli needs). */
export interface RedisCredentials {
  host: string;
  port: number;
  username: string;
  password: string;
  /** The key says TLS (then the server is checked against the cluster CA, cluster-ca.ts). */
  tls?: boolean;
}

/** The real redis-cli (Debian's redis-tools), as a user of the key runs it. */
export function redisCli(credentials: RedisCredentials, ...command: string[]): Promise<string> {
  const args = ['-h', credentials.host, '-p', String(credentials.port), '--user', credentials.username];
  const ca = clusterCaFile();
  if (credentials.tls && ca) args.push('--tls', '--cacert', ca);
  return redisCliRaw([...args, '--pass', credentials.password, '--no-auth-warning', ...command]);
}

/** redis-cli's output (an error reply included), whatever its exit code. */
export async function redisCliRaw(args: string[]): Promise<string> {
  try {
    const { stdout, stderr } = await run('redis-cli', args, { timeout: 15_000 });
    return `${stdout}${stderr}`.trim();
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; message: string };
    return `${e.stdout ?? ''}${e.stderr ?? e.message}`.trim();
  }
}
