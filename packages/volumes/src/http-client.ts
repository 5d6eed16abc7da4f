import { type ClientRequest, request as httpRequest, type IncomingMessage } from 'node:http';
import { type RequestOptions as HttpsRequestOptions, request as httpsRequest } from 'node:https';
import { signRequest } from './auth.js';
import type { TransferConfig } from './config.js';
import { VolumeTransferError } from './errors.js';
import { headerNames } from './protocol.js';

export interface SignedRequest {
  request: ClientRequest;
  /** The request's nonce: the peer's body signature is bound to it. */
  nonce: string;
}

export interface SignedRequestOptions {
  headers?: Record<string, string>;
  signal?: AbortSignal | undefined;
  /** TLS options of an `https:` peer (tls.ts clientTlsOptions). */
  tls?: HttpsRequestOptions | undefined;
}

/** Starts a signed request to a peer's volume server (headers not yet flushed). */
export function startSignedRequest(
  config: Pick<TransferConfig, 'secret' | 'idleTimeoutMs'>,
  baseUrl: string,
  method: 'GET' | 'POST',
  path: string,
  options: SignedRequestOptions = {},
): SignedRequest {
  const url = new URL(path, baseUrl);
  const signed = signRequest(config.secret, method, `${url.pathname}${url.search}`);
  const common = {
    method,
    headers: { ...options.headers, ...signed },
    ...(options.signal ? { signal: options.signal } : {}),
  };
  const request =
    url.protocol === 'https:' ? httpsRequest(url, { ...options.tls, ...common }) : httpRequest(url, common);
  request.setTimeout(config.idleTimeoutMs, () => {
    request.destroy(new VolumeTransferError(`${method} ${url.pathname}: no data for ${config.idleTimeoutMs} ms`));
  });
  return { request, nonce: signed[headerNames.nonce] };
}

export function responseOf(request: ClientRequest): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    request.once('response', resolve);
    request.once('error', (error) => reject(asTransferError(error)));
  });
}

function asTransferError(error: unknown): Error {
  if (error instanceof VolumeTransferError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new VolumeTransferError(`volume transfer connection failed: ${message}`, undefined, { cause: error });
}

/** Reads a JSON body (an answer, an error, a manifest) of at most `maxBytes`. */
export async function readJsonBody(response: IncomingMessage, maxBytes: number): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of response as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) {
      response.destroy();
      throw new VolumeTransferError(`answer larger than ${maxBytes} bytes`, response.statusCode);
    }
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new VolumeTransferError('answer is not JSON', response.statusCode);
  }
}

/** The error a non-2xx answer stands for, with the peer's message. */
export async function errorFromResponse(response: IncomingMessage, what: string): Promise<VolumeTransferError> {
  let body: unknown;
  try {
    body = await readJsonBody(response, 1024 * 1024);
  } catch {
    // The status alone has to do.
  }
  return peerError(response.statusCode ?? 0, body, what);
}

/** The error of a non-2xx answer whose JSON body (if any) was `body`. */
export function peerError(status: number, body: unknown, what: string): VolumeTransferError {
  const answer = body as { error?: unknown; problems?: unknown } | null | undefined;
  let detail = '';
  if (typeof answer?.error === 'string') detail = answer.error;
  if (Array.isArray(answer?.problems) && answer.problems.length > 0)
    detail += `: ${answer.problems.map(String).join('; ')}`;
  return new VolumeTransferError(`${what}: peer answered ${status}${detail ? ` (${detail})` : ''}`, status);
}
