import { readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { freePort } from '@service-foundry/core';

async function isFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

/** `preferred` when it is free (stable, memorable ports for a dev cluster), else any free port. */
export async function freePortOr(preferred: number): Promise<number> {
  return (await isFree(preferred)) ? preferred : freePort();
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
