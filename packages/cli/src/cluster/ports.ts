import { randomInt } from 'node:crypto';
import { rmSync } from 'node:fs';
import { mkdir, readFile, rm, stat } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProcessError } from '@service-foundry/core';

/**
 * Ports this process chose and no component listens on yet. Another `sf up` on the machine
 * (tests start several at once) sees them free until a component binds them, seconds
 * later, and could choose one too: the second listener then dies of EADDRINUSE and its
 * supervisor restarts it in vain. A reservation is a directory (mkdir is atomic across
 * processes), removed when this process exits: by then its components listen.
 */
const reservationDir = join(tmpdir(), 'sf-listen-ports');
/** A reservation older than this was left by a process that died without cleaning up. */
const staleReservationMs = 15 * 60 * 1000;
const reserved = new Set<string>();

async function reserve(port: number): Promise<boolean> {
  const dir = join(reservationDir, String(port));
  await mkdir(reservationDir, { recursive: true });
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await mkdir(dir);
      if (reserved.size === 0) {
        process.once('exit', () => {
          for (const path of reserved) rmSync(path, { recursive: true, force: true });
        });
      }
      reserved.add(dir);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const age = Date.now() - (await stat(dir).catch(() => ({ mtimeMs: Date.now() }))).mtimeMs;
      if (age < staleReservationMs) return false;
      await rm(dir, { recursive: true, force: true });
    }
  }
  return false;
}

/** Free now and reserved against every other `sf up` on this machine. */
async function claim(port: number): Promise<boolean> {
  return (await isFree(port)) && (await reserve(port));
}

async function isFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

/**
 * Where `sf up` picks the ports of its own listeners when it may choose: below the
 * kernel's ephemeral ports (32768–60999 by default, the local ports of every outgoing
 * connection on the machine, which may take a port between the check and the listen) and
 * below the router port ranges (`sf up`'s 30000–30999, the tests' 20000–32699).
 */
const listenPorts = { min: 10_000, max: 19_999 };

/** A port free on 127.0.0.1 now, chosen at random among `listenPorts`, reserved until this process exits. */
export async function freeListenPort(): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = randomInt(listenPorts.min, listenPorts.max + 1);
    if (await claim(port)) return port;
  }
  throw new ProcessError(`no free port between ${listenPorts.min} and ${listenPorts.max} after 100 tries`, null);
}

/** `preferred` when it is free (stable, memorable ports for a dev cluster), else a free one. */
export async function freePortOr(preferred: number): Promise<number> {
  return (await claim(preferred)) ? preferred : freeListenPort();
}

/**
 * Where `min`–`max` overlaps the kernel's ephemeral ports (the local ports of outgoing
 * connections): the router could find a port of its range taken by any process's
 * connection and refuse clients until it is released. Undefined when it does not overlap
 * (or the range cannot be read).
 */
export async function ephemeralOverlap(min: number, max: number): Promise<string | undefined> {
  const text = await readFile('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').catch(() => '');
  const [low, high] = text.trim().split(/\s+/).map(Number);
  if (low === undefined || high === undefined || Number.isNaN(low) || Number.isNaN(high)) return undefined;
  return min <= high && max >= low
    ? `${Math.max(min, low)}-${Math.min(max, high)} (ephemeral ports ${low}-${high})`
    : undefined;
}
