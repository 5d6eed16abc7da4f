import { once } from 'node:events';
import { Readable, Writable } from 'node:stream';
import type Docker from 'dockerode';

export interface StreamOutput {
  stdout: string;
  stderr: string;
  /** Both streams together, in the order they were written. */
  all: string;
}

/**
 * Collects the output of a container without a TTY (exec output, logs), which Docker sends
 * as stdout and stderr frames, through dockerode's own demultiplexer. A TTY stream is not
 * framed; the demultiplexer passes it through as stdout. Returns the text so far.
 */
export function collectOutput(modem: Docker['modem'], stream: NodeJS.ReadableStream): () => StreamOutput {
  const all: Buffer[] = [];
  const sink = (parts: Buffer[]) =>
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        parts.push(chunk);
        all.push(chunk);
        done();
      },
    });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  modem.demuxStream(stream, sink(out), sink(err));
  const text = (parts: Buffer[]) => Buffer.concat(parts).toString('utf8');
  return () => ({ stdout: text(out), stderr: text(err), all: text(all) });
}

/** The same for output Docker returned whole (logs fetched without `follow`). */
export async function demultiplex(modem: Docker['modem'], buffer: Buffer): Promise<StreamOutput> {
  const stream = Readable.from([buffer]);
  const output = collectOutput(modem, stream);
  await once(stream, 'end');
  return output();
}

/** The last `count` non-empty lines of `text`, for error messages. */
export function lastLines(text: string, count: number): string {
  return text
    .split('\n')
    .map((line) => line.trimEnd())
    .filter((line) => line.length > 0)
    .slice(-count)
    .join('\n');
}
