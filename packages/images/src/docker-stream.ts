import { DockerError } from '@service-foundry/core';

/** One message of the JSON-lines progress stream of `/build` and `/images/create`. */
export interface DockerStreamMessage {
  stream?: string;
  status?: string;
  progress?: string;
  error?: string;
  errorDetail?: { message?: string; code?: number };
  aux?: { ID?: string };
}

/**
 * Reads a Docker JSON-lines progress stream to its end. Resolves with every message;
 * rejects with a DockerError carrying Docker's message when the stream reports an
 * error (a failed `RUN`, a missing base image) — Docker still answers 200 in that case,
 * so the status code alone says nothing.
 */
export function readDockerStream(
  stream: NodeJS.ReadableStream,
  what: string,
  onMessage: (message: DockerStreamMessage) => void,
): Promise<DockerStreamMessage[]> {
  return new Promise((resolve, reject) => {
    const messages: DockerStreamMessage[] = [];
    let buffered = '';
    let failure: DockerError | undefined;
    let settled = false;

    const settle = (error?: Error) => {
      if (settled) return;
      settled = true;
      if (error) reject(error);
      else if (failure) reject(failure);
      else resolve(messages);
    };

    const handleLine = (line: string) => {
      const trimmed = line.trim();
      if (!trimmed) return;
      let message: DockerStreamMessage;
      try {
        message = JSON.parse(trimmed) as DockerStreamMessage;
      } catch {
        message = { stream: trimmed };
      }
      messages.push(message);
      if (message.error !== undefined && !failure) {
        failure = new DockerError(`${what} failed: ${message.errorDetail?.message ?? message.error}`);
      }
      onMessage(message);
    };

    stream.on('data', (chunk: Buffer | string) => {
      buffered += chunk.toString();
      let newline = buffered.indexOf('\n');
      while (newline >= 0) {
        handleLine(buffered.slice(0, newline));
        buffered = buffered.slice(newline + 1);
        newline = buffered.indexOf('\n');
      }
    });
    let ended = false;
    stream.on('end', () => {
      ended = true;
      handleLine(buffered);
      settle();
    });
    stream.on('close', () => {
      if (!ended) settle(new DockerError(`${what} failed: Docker closed the stream before its end`));
    });
    stream.on('error', (error: Error) => settle(new DockerError(`${what} failed: ${error.message}`, { cause: error })));
  });
}

/** Splits the `stream` text of build messages into display lines, dropping blank ones. */
export function messageLines(message: DockerStreamMessage): string[] {
  const text = message.stream ?? (message.status ? `${message.status} ${message.progress ?? ''}` : '');
  return text
    .split('\n')
    .map((line) => line.trimEnd())
    .filter((line) => line.trim() !== '');
}
