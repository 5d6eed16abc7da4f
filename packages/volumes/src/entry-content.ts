import { InvalidInputError, isSfError } from '@service-foundry/core';

export type ChunkHandler = (chunk: Buffer) => void | Promise<void>;

/** The content of one tar entry, read once. */
export interface EntryContent {
  /**
   * Calls `handler` for every chunk, in order, one at a time (a returned promise is
   * awaited before the next chunk). Errors of the parser (a stream cut inside an entry)
   * become refusals of the stream; errors of `handler` pass through.
   */
  consume(handler: ChunkHandler): Promise<void>;
}

/** The event side of a tar-stream entry (a streamx Readable). */
export interface EntrySource {
  on(event: 'data', listener: (chunk: Buffer) => void): unknown;
  on(event: 'end' | 'close', listener: () => void): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
  pause(): unknown;
  resume(): unknown;
  readonly destroyed: boolean;
}

export function asStreamRefusal(error: unknown): Error {
  if (isSfError(error)) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new InvalidInputError('snapshot stream refused', [`malformed tar stream: ${message}`]);
}

/**
 * Event-driven reading: an async iterator costs a few promises per chunk, which adds up
 * over the 16,000 chunks of a GiB on the busy end of a transfer.
 */
export function entryContent(source: EntrySource): EntryContent {
  return {
    consume: (handler) =>
      new Promise<void>((resolve, reject) => {
        const queue: Buffer[] = [];
        let busy = false;
        let ended = false;
        let settled = false;
        const finish = (error?: unknown) => {
          if (settled) return;
          settled = true;
          if (error === undefined) resolve();
          else reject(error);
        };
        const idle = () => {
          while (!busy && !settled && queue.length > 0) run(queue.shift() as Buffer);
          if (!busy && !settled && queue.length === 0) {
            if (ended) finish();
            else source.resume();
          }
        };
        const run = (chunk: Buffer) => {
          let result: void | Promise<void>;
          try {
            result = handler(chunk);
          } catch (error) {
            finish(error);
            return;
          }
          if (result) {
            // Wait for the handler (a write) before taking more.
            busy = true;
            source.pause();
            result.then(() => {
              busy = false;
              idle();
            }, finish);
          }
        };
        // Destroyed before anyone listened (the connection broke between two entries):
        // no event will come.
        if (source.destroyed) {
          finish(asStreamRefusal(new Error('entry closed before its end')));
          return;
        }
        source.on('data', (chunk: Buffer) => {
          if (busy) queue.push(chunk);
          else run(chunk);
        });
        source.on('end', () => {
          ended = true;
          if (!busy && queue.length === 0) finish();
        });
        source.on('error', (error) => finish(asStreamRefusal(error)));
        source.on('close', () => {
          if (!ended) finish(asStreamRefusal(new Error('entry closed before its end')));
        });
      }),
  };
}
