import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { BodyProof } from './body-check.js';
import { headerNames, signaturePrefix } from './protocol.js';

/**
 * Request authentication with the cluster's shared secret. A request carries a timestamp,
 * a random nonce and an HMAC-SHA256 over method, path with query, timestamp and nonce. The
 * receiver accepts it only within the clock window, only once (nonces are remembered for
 * the window), and compares signatures in constant time. The body is not signed up front
 * (it is a stream); a proof of it is signed in a trailer instead, bound to the same nonce.
 */

const noncePattern = /^[0-9a-f]{32}$/;
const signaturePattern = /^[0-9a-f]{64}$/;
const timestampPattern = /^[0-9]{1,16}$/;

function hmac(secret: string, text: string): Buffer {
  return createHmac('sha256', secret).update(text).digest();
}

function requestText(method: string, path: string, timestamp: string, nonce: string): string {
  return `${signaturePrefix}\n${method.toUpperCase()}\n${path}\n${timestamp}\n${nonce}`;
}

function bodyText(nonce: string, proof: BodyProof): string {
  return `${signaturePrefix}-body\n${nonce}\n${proof.crc32}\n${proof.header}\n${proof.trailer}`;
}

export interface SignedHeaders {
  [headerNames.timestamp]: string;
  [headerNames.nonce]: string;
  [headerNames.signature]: string;
}

/** Headers that authenticate one request (`path` includes the query string, as sent). */
export function signRequest(secret: string, method: string, path: string, now = Date.now()): SignedHeaders {
  const timestamp = String(now);
  const nonce = randomBytes(16).toString('hex');
  return {
    [headerNames.timestamp]: timestamp,
    [headerNames.nonce]: nonce,
    [headerNames.signature]: hmac(secret, requestText(method, path, timestamp, nonce)).toString('hex'),
  };
}

/** Signature of a body (see BodyProof), bound to the nonce of the request it belongs to. */
export function signBody(secret: string, nonce: string, proof: BodyProof): string {
  return hmac(secret, bodyText(nonce, proof)).toString('hex');
}

export function verifyBodySignature(secret: string, nonce: string, proof: BodyProof, signature: unknown): boolean {
  if (typeof signature !== 'string' || !signaturePattern.test(signature)) return false;
  return timingSafeEqual(hmac(secret, bodyText(nonce, proof)), Buffer.from(signature, 'hex'));
}

function single(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return typeof value === 'string' ? value : undefined;
}

export type Verdict = { ok: true; nonce: string } | { ok: false; reason: string };

/**
 * Checks incoming requests. Keeps the nonces it has accepted until they fall out of the
 * clock window, so a captured request cannot be replayed.
 */
export class RequestVerifier {
  readonly #secret: string;
  readonly #windowMs: number;
  readonly #maxNonces: number;
  readonly #seen = new Map<string, number>();

  constructor(secret: string, windowMs: number, maxNonces = 100_000) {
    this.#secret = secret;
    this.#windowMs = windowMs;
    this.#maxNonces = maxNonces;
  }

  verify(method: string, path: string, headers: IncomingHttpHeaders, now = Date.now()): Verdict {
    const timestamp = single(headers, headerNames.timestamp);
    const nonce = single(headers, headerNames.nonce);
    const signature = single(headers, headerNames.signature);
    if (!timestamp || !nonce || !signature) return { ok: false, reason: 'request is not signed' };
    if (!timestampPattern.test(timestamp) || !noncePattern.test(nonce) || !signaturePattern.test(signature)) {
      return { ok: false, reason: 'malformed signature headers' };
    }
    if (Math.abs(now - Number(timestamp)) > this.#windowMs)
      return { ok: false, reason: 'timestamp outside the window' };
    const expected = hmac(this.#secret, requestText(method, path, timestamp, nonce));
    if (!timingSafeEqual(expected, Buffer.from(signature, 'hex'))) return { ok: false, reason: 'bad signature' };
    this.#forgetExpired(now);
    if (this.#seen.has(nonce)) return { ok: false, reason: 'replayed request' };
    if (this.#seen.size >= this.#maxNonces) return { ok: false, reason: 'too many requests in the window' };
    this.#seen.set(nonce, Number(timestamp) + this.#windowMs);
    return { ok: true, nonce };
  }

  #forgetExpired(now: number): void {
    // Map keeps insertion order, which is nearly expiry order: stop at the first live one.
    for (const [nonce, expiresAt] of this.#seen) {
      if (expiresAt >= now) break;
      this.#seen.delete(nonce);
    }
  }
}
