import type { RequestOptions as HttpsRequestOptions } from 'node:https';
import { readJsonBody, responseOf, startSignedRequest } from './http-client.js';

/**
 * Small calls between agents besides volume transfers (the failsafe's promises): `POST
 * /calls/<name>?<params>`, authenticated exactly like a transfer (client certificate named
 * as a volume peer, then the HMAC over method, path and query, once per nonce). Everything
 * a call says is in its signed query: there is no body to read, so none is accepted.
 */

/** Names of calls: lower-case words joined by hyphens. */
export const peerCallNamePattern = /^[a-z]+(-[a-z]+)*$/;

/** The largest answer a caller reads. */
const maxAnswerBytes = 256 * 1024;

/** The longest query a call may carry (the server's header limit is 16 KiB). */
export const maxPeerCallQueryBytes = 12 * 1024;

export interface PeerCall {
  /** The calling node, from its client certificate (`sf-volumes.<node>` without the prefix when known). */
  peer: string;
  params: URLSearchParams;
}

export interface PeerCallAnswer {
  status: number;
  body: unknown;
}

/** Answers one call; a thrown error is answered like any other (http-answers.ts). */
export type PeerCallHandler = (call: PeerCall) => PeerCallAnswer | Promise<PeerCallAnswer>;

export const peerCallPattern = /^\/calls\/([^/?]+)(?:\?(.*))?$/;

export interface CallPeerOptions {
  secret: string;
  /** TLS options of an `https:` peer (tls.ts clientTlsOptions). */
  tls?: HttpsRequestOptions | undefined;
  /** The whole call, connect to answer. @default 1000 */
  timeoutMs?: number;
}

/** Calls `name` on the volume server at `baseUrl`; rejects on a connection error or timeout. */
export async function callPeer(
  baseUrl: string,
  name: string,
  params: URLSearchParams,
  options: CallPeerOptions,
): Promise<PeerCallAnswer> {
  if (!peerCallNamePattern.test(name)) throw new TypeError(`not a peer call name: ${name}`);
  const query = params.toString();
  if (Buffer.byteLength(query) > maxPeerCallQueryBytes) {
    throw new RangeError(
      `peer call ${name}: query of ${Buffer.byteLength(query)} bytes is over ${maxPeerCallQueryBytes}`,
    );
  }
  const timeoutMs = options.timeoutMs ?? 1000;
  const { request } = startSignedRequest(
    { secret: options.secret, idleTimeoutMs: timeoutMs },
    baseUrl,
    'POST',
    `/calls/${name}${query ? `?${query}` : ''}`,
    { tls: options.tls, signal: AbortSignal.timeout(timeoutMs) },
  );
  const answered = responseOf(request);
  request.end();
  const response = await answered;
  return { status: response.statusCode ?? 0, body: await readJsonBody(response, maxAnswerBytes) };
}
