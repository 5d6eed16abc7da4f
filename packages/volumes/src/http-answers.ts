import type { ServerResponse } from 'node:http';
import { ConflictError, InvalidInputError, isSfError, NotFoundError } from '@service-foundry/core';

export function sendJson(res: ServerResponse, status: number, body: unknown, close = false): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = JSON.stringify(body);
  const headers: Record<string, string | number> = {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  };
  if (close) headers.connection = 'close';
  res.writeHead(status, headers);
  res.end(text);
}

export function statusOf(error: unknown): number {
  if (error instanceof InvalidInputError) return 400;
  if (error instanceof NotFoundError) return 404;
  if (error instanceof ConflictError) return 409;
  return 500;
}

export function describe(error: unknown): { error: string; code?: string; problems?: readonly string[] } {
  if (error instanceof InvalidInputError) return { error: error.message, code: error.code, problems: error.problems };
  if (isSfError(error)) return { error: error.message, code: error.code };
  return { error: 'internal error' };
}

export function waitWritable(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}
