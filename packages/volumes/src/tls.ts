import { readFile } from 'node:fs/promises';
import { Agent, type RequestOptions } from 'node:https';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { InvalidConfigError } from '@service-foundry/core';

/**
 * TLS of volume transfers, on top of the HMAC (auth.ts): the stream is encrypted, the
 * server proves it holds a certificate of the cluster CA naming the address the client
 * dialled, and the client proves it holds one too (mutual TLS). The HMAC stays the
 * authorisation: a certificate alone pulls nothing, and the secret alone no longer reaches
 * the HTTP layer from a host without a certificate. See docs/volumes.md#security.
 */
export interface VolumeTlsFiles {
  /** The cluster CA (PEM): the only issuer accepted for the peer's certificate. */
  caFile: string;
  /** This end's certificate (PEM), issued by that CA; a server's names its address. */
  certFile: string;
  /** Its private key (PEM). */
  keyFile: string;
}

/** The files' contents, read once per server start or per pull (a renewed certificate is used at once). */
export interface VolumeTlsMaterial {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

/** TLS 1.2 is the oldest version either end accepts (Node's default too; said here so it stays so). */
export const minTlsVersion = 'TLSv1.2';

/** Reads the three PEM files; a missing or unreadable one is a config error naming it. */
export async function readVolumeTls(files: VolumeTlsFiles): Promise<VolumeTlsMaterial> {
  const problems: string[] = [];
  const read = async (field: keyof VolumeTlsFiles): Promise<Buffer> => {
    const path = files[field];
    if (typeof path !== 'string' || !path.startsWith('/')) {
      problems.push(`${field} must be an absolute path`);
      return Buffer.alloc(0);
    }
    try {
      const content = await readFile(path);
      if (!content.includes('-----BEGIN ')) problems.push(`${field} ${path} holds no PEM block`);
      return content;
    } catch (error) {
      problems.push(`${field} ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
      return Buffer.alloc(0);
    }
  };
  const [ca, cert, key] = [await read('caFile'), await read('certFile'), await read('keyFile')];
  if (problems.length > 0) throw new InvalidConfigError('volume transfer TLS files', problems);
  return { ca, cert, key };
}

/** What a TLS client of a peer presents and trusts: only the cluster CA, not the system's. */
export interface TlsDialOptions {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
  minVersion: typeof minTlsVersion;
  rejectUnauthorized: true;
}

/** TLS options to dial a peer on a connection of one's own (snapshot-request.ts). */
export function tlsDialOptions(material: VolumeTlsMaterial): TlsDialOptions {
  return {
    ca: material.ca,
    cert: material.cert,
    key: material.key,
    minVersion: minTlsVersion,
    rejectUnauthorized: true,
  };
}

/** What node:https needs to dial a peer: only the cluster CA is trusted, not the system's. */
export function clientTlsOptions(material: VolumeTlsMaterial): RequestOptions {
  return {
    ...tlsDialOptions(material),
    // No connection reuse: each pull is one request, and a pooled socket would outlive the
    // certificate files it was made with.
    agent: false,
  };
}

/**
 * Like clientTlsOptions, but through a pool that keeps connections open: for small calls
 * made every few 100 ms (peer-calls.ts), where a TLS handshake per call would be most of
 * the work. Destroy `agent` when done.
 */
export function pooledClientTlsOptions(material: VolumeTlsMaterial): { agent: Agent } {
  return { agent: new Agent({ ...tlsDialOptions(material), keepAlive: true, maxSockets: 2 }) };
}

/** What node:https needs to serve: clients must present a certificate of the same CA. */
export function serverTlsOptions(material: VolumeTlsMaterial) {
  return {
    ca: material.ca,
    cert: material.cert,
    key: material.key,
    minVersion: minTlsVersion,
    requestCert: true,
    rejectUnauthorized: true,
  } as const;
}

/** The verified client certificate of a request's connection, or undefined on plain HTTP. */
export function clientCertificateOf(socket: unknown): PeerCertificate | undefined {
  const tls = socket as Partial<TLSSocket>;
  if (typeof tls.getPeerCertificate !== 'function' || tls.authorized !== true) return undefined;
  const certificate = tls.getPeerCertificate();
  return certificate && Object.keys(certificate).length > 0 ? certificate : undefined;
}
