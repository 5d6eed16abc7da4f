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
