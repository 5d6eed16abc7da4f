import { once } from 'node:events';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { waitFor } from '@service-foundry/core';
import { spawnWatched, type WatchedProcess } from '@service-foundry/test-support';
import { type Harness, startBrokerHarness } from '@service-foundry/test-support/broker-harness';
import { startBroker } from '../src/index.js';

export const brokerMainJs = fileURLToPath(new URL('../dist/main.js', import.meta.url));

export type { Harness };

/** The broker under test (its source) on a throw-away etcd; `config` on top of the harness's. */
export function startHarness(config: Record<string, unknown> = {}): Promise<Harness> {
  return startBrokerHarness({ startBroker, config });
}

/**
 * The built broker as a process (`main.js --config <file>`), once its ready line is out:
 * the URL that line names. The caller kills it; if it never gets ready it is killed here.
 */
export async function startBrokerMain(configFile: string): Promise<{ run: WatchedProcess; url: string }> {
  const run = spawnWatched(process.execPath, [brokerMainJs, '--config', configFile]);
  try {
    const url = await waitFor(
      () => {
        const ready = run
          .stdout()
          .split('\n')
          .find((line) => line.includes('"broker ready"'));
        return ready ? (JSON.parse(ready) as { url: string }).url : undefined;
      },
      { description: 'the broker ready line', timeoutMs: 15_000 },
    );
    return { run, url };
  } catch (error) {
    run.child.kill('SIGKILL');
    throw error;
  }
}

export interface RawReply {
  status: number;
  headers: Map<string, string>;
  body: unknown;
  text: string;
}

/**
 * Sends bytes exactly as given over a fresh TCP connection: `fetch` and node:http would
 * normalize or refuse the paths and methods these tests need to send. `head` is the request
 * line and headers without the blank line; `Connection: close` is added.
 */
export async function rawHttp(base: string, head: string, body = ''): Promise<RawReply> {
  const url = new URL(base);
  const socket = connect({ host: url.hostname, port: Number(url.port) });
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  await once(socket, 'connect');
  const length = body ? `Content-Length: ${Buffer.byteLength(body)}\r\n` : '';
  // Not end(): a server that sees the client's FIN drops the response it is still preparing.
  // It closes the connection itself after answering (Connection: close); a silent server
  // is cut off after 10 s and the reply then has no status.
  socket.setTimeout(10_000, () => socket.destroy());
  socket.write(`${head}\r\nHost: ${url.host}\r\nConnection: close\r\n${length}\r\n${body}`);
  await once(socket, 'close');
  const raw = Buffer.concat(chunks).toString('utf8');
  const split = raw.indexOf('\r\n\r\n');
  const [statusLine = '', ...lines] = raw.slice(0, split).split('\r\n');
  const headers = new Map(
    lines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]),
  );
  const text = raw.slice(split + 4);
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  return { status: Number(statusLine.split(' ')[1]), headers, body: parsed, text };
}
