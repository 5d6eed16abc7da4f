import { UsageError } from './errors.js';

/** All of standard input as text, refusing more than `maxBytes` (a secret, not a file). */
export async function readStdin(maxBytes: number): Promise<string> {
  if (process.stdin.isTTY) throw new UsageError('standard input is a terminal: pipe the password in (e.g. < file)');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    size += (chunk as Buffer).length;
    if (size > maxBytes) throw new UsageError(`standard input is longer than ${maxBytes} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}
