import { createServer } from 'node:net';

/** A TCP port that was free on `host` a moment ago (the kernel picked it). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === 'object') resolvePort(address.port);
        else reject(new Error('no port assigned'));
      });
    });
  });
}

/**
 * The path an agent's volume server answers `204` on for any client the TLS handshake
 * admitted: the controller's node probes (scheduler node-prober.ts) ask it a few times a
 * second to learn that the agent's process is alive, faster than its lease can say so.
 */
export const nodeAlivePath = '/alive';

/**
 * The common name of every agent's volume certificate is this prefix and the node's name
 * (`sf up` issues them so): a volume server admits only peers named so, and a node probe
 * takes an answer only from the server of the node it asked.
 */
export const volumePeerPrefix = 'sf-volumes.';
