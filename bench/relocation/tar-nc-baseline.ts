import { spawn } from 'node:child_process';
import { freePort, waitFor } from '@service-foundry/core';
import { run } from './shell.js';

function exited(child: ReturnType<typeof spawn>, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${what} exited with ${code}`))));
  });
}

export interface BaselineRun {
  seconds: number;
  /** User + system CPU seconds of tar, nc, nc and tar together. */
  cpuSeconds: number;
}

/** Runs `script` under GNU time's format through bash's `times` (children's user + sys). */
function timedBash(script: string): { child: ReturnType<typeof spawn>; cpu: Promise<number> } {
  const child = spawn('bash', ['-c', `${script}; code=$?; times >&3; exit $code`], {
    stdio: ['ignore', 'inherit', 'inherit', 'pipe'],
  });
  const cpu = new Promise<number>((resolve) => {
    let text = '';
    child.stdio[3]?.on('data', (chunk: Buffer) => {
      text += chunk.toString();
    });
    child.on('close', () => {
      // `times` prints the shell's own times, then its children's: "0m0.012s 0m0.845s".
      const seconds = [...text.matchAll(/(\d+)m([\d.]+)s/g)].map((m) => Number(m[1]) * 60 + Number(m[2]));
      resolve((seconds[2] ?? 0) + (seconds[3] ?? 0));
    });
  });
  return { child, cpu };
}

/**
 * The baseline: `tar -C src -c . | nc -q0 127.0.0.1 PORT` into `nc -l -p PORT | tar -C dst -x`
 * (netcat-openbsd), on loopback. Timed from the sender's start until the receiving tar
 * exits, i.e. until every file is written (to the page cache, like the library without
 * fsync).
 */
export async function tarNc(src: string, dst: string): Promise<BaselineRun> {
  const port = await freePort();
  await run('mkdir', ['-p', dst]);
  const receiver = timedBash(`nc -l -p ${port} | tar -C '${dst}' -x`);
  const received = exited(receiver.child, 'nc | tar -x');
  await waitFor(async () => (await run('ss', ['-ltnH', `sport = :${port}`])).includes(`:${port}`), {
    description: `nc listening on ${port}`,
    timeoutMs: 10_000,
    intervalMs: 20,
  });
  const started = process.hrtime.bigint();
  const sender = timedBash(`tar -C '${src}' -c . | nc -q0 127.0.0.1 ${port}`);
  await Promise.all([exited(sender.child, 'tar -c | nc'), received]);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { seconds, cpuSeconds: (await sender.cpu) + (await receiver.cpu) };
}
