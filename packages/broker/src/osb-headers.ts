import { ErrorCodes } from '@service-foundry/core';
import type { FastifyRequest } from 'fastify';
import { OsbError } from './osb-errors.js';
import { oldestMinor, parseApiVersion } from './osb-version.js';

/** The OSB version this broker implements; 2.11 to 2.17 are served (see osb-version.ts). */
export const supportedApiVersion = '2.17';

function preconditionFailed(description: string): OsbError {
  return new OsbError(412, 'PreconditionFailed', description, ErrorCodes.invalidInput);
}

/**
 * onRequest hook for /v2 routes: the platform must declare the OSB version it speaks.
 * OSB lets a broker answer a missing header with 400 or 412; we use 412 for both cases so
 * platforms see one consistent "precondition" answer.
 */
export async function requireApiVersion(request: FastifyRequest): Promise<void> {
  const header = request.headers['x-broker-api-version'];
  const verdict = parseApiVersion(header);
  if (verdict.ok) return;
  const served = `2.${oldestMinor} to ${supportedApiVersion}`;
  if (verdict.reason === 'missing') {
    throw preconditionFailed(`the X-Broker-API-Version header is required (this broker serves ${served})`);
  }
  throw preconditionFailed(
    `X-Broker-API-Version ${JSON.stringify(String(header).slice(0, 20))} is not supported; use 2.${oldestMinor} or later (this broker serves ${served})`,
  );
}

/**
 * The platform named in `X-Broker-API-Originating-Identity: <platform> <base64 JSON>`. Only
 * the platform is ever logged: the encoded value identifies a person.
 */
export function originatingPlatform(request: FastifyRequest): string | undefined {
  const header = request.headers['x-broker-api-originating-identity'];
  if (typeof header !== 'string') return undefined;
  const match = /^([A-Za-z0-9._-]{1,64})[ \t]+\S/.exec(header);
  return match?.[1];
}

/** `X-Broker-API-Request-Identity`, when it is a sane token; OSB says to echo it back. */
export function requestIdentity(request: FastifyRequest): string | undefined {
  const header = request.headers['x-broker-api-request-identity'];
  return typeof header === 'string' && /^[\x21-\x7e]{1,200}$/.test(header) ? header : undefined;
}
