import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { ErrorCodes } from '@service-foundry/core';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { authenticateChallenge } from './auth.js';
import { BrokerErrorCodes } from './errors.js';
import { methodNotAllowed, notFound, OsbError, toOsbError } from './osb-errors.js';
import { speaks } from './osb-version.js';

/** Methods a route can have; a 405 lists those the path answers to. */
const methods = ['GET', 'HEAD', 'PUT', 'PATCH', 'POST', 'DELETE'] as const;

/** Sends an error as `{error, description, sf_code}` with its status, logged without headers or body. */
function answer(request: FastifyRequest, reply: FastifyReply, thrown: unknown): FastifyReply {
  const osb = toOsbError(thrown);
  if (osb.status >= 500) request.log.error({ err: thrown }, 'request failed');
  else request.log.info({ error: osb.error, description: osb.message }, 'request rejected');
  if (osb.status === 401) reply.header('WWW-Authenticate', authenticateChallenge);
  return reply.code(osb.status).send(osb.body(speaks(request, 'operationOutcome')));
}

/**
 * Fastify's routing errors (bad percent-encoding, a path segment over `maxParamLength`):
 * Fastify answers these itself, before any hook, unless this option takes them.
 */
export function frameworkErrors(error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  void answer(request, reply, error);
}

/**
 * Errors of the HTTP parser, before Fastify sees a request (headers over 16 KiB, an
 * unknown method, a malformed request line, a timeout): answered on the socket, then
 * closed, as Node does, but with an OSB body.
 */
export function clientErrorHandler(error: NodeJS.ErrnoException, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  let osb: OsbError;
  if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    osb = new OsbError(408, 'RequestTimeout', 'the request was not received in time', ErrorCodes.invalidInput);
  } else if (error.code === 'HPE_HEADER_OVERFLOW') {
    osb = new OsbError(
      431,
      'RequestHeaderFieldsTooLarge',
      'the request line and headers are larger than 16 KiB',
      ErrorCodes.invalidInput,
    );
  } else {
    osb = new OsbError(400, 'BadRequest', 'the request is not valid HTTP/1.1', ErrorCodes.invalidInput);
  }
  const body = JSON.stringify(osb.body());
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${osb.status} ${STATUS_CODES[osb.status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(error);
}

/**
 * The error handler, the 404/405 handler, and 503 while closing: every error the broker
 * sends has the OSB shape, whoever produced it.
 */
export function installErrorAnswers(app: FastifyInstance): void {
  app.setErrorHandler((error, request, reply) => answer(request, reply, error));

  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?', 1)[0] ?? '';
    const shown = `${request.method} ${path.slice(0, 200)}`;
    const allowed = methods.filter((m) => app.findRoute({ method: m, url: path }) !== null);
    if (allowed.length === 0) return answer(request, reply, notFound(`no route ${shown}`));
    reply.header('Allow', allowed.join(', '));
    return answer(request, reply, methodNotAllowed(`${shown} is not allowed; this path answers ${allowed.join(', ')}`));
  });

  // Fastify's own answer while closing is not an OSB body; the hook below gives one.
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onRequest', async () => {
    if (closing) {
      throw new OsbError(503, 'ShuttingDown', 'the broker is shutting down; retry', BrokerErrorCodes.unavailable);
    }
  });
}
