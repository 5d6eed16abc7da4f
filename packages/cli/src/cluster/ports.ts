import { randomInt } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { ProcessError } from '@service-foundry/core';

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

/** A port free on 127.0.0.1 now, chosen at random among `listenPorts`. */
export async function freeListenPort(): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = randomInt(listenPorts.min, listenPorts.max + 1);
    if (await isFree(port)) return port;
  }
  throw new ProcessError(`no free port between ${listenPorts.min} and ${listenPorts.max} after 100 tries`, null);
}

/** `preferred` when it is free (stable, memorable ports for a dev cluster), else a free one. */
export async function freePortOr(preferred: number): Promise<number> {
  return (await isFree(preferred)) ? preferred : freeListenPort();
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
