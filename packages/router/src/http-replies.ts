import type { ServerResponse } from 'node:http';
import type { LimitReason } from './admission.js';

export const notFoundBody = 'no route for this host\n';
export const badGatewayBody = 'bad gateway: the service is not reachable\n';

/** A complete response for a raw socket (an upgrade that is answered, not proxied). */
export function plainTextResponse(status: string, body: string, extraHeaders = ''): string {
  return `HTTP/1.1 ${status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extraHeaders}Connection: close\r\n\r\n${body}`;
}

export function reply(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, {
    ...headers,
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}

/** How a refused request is answered: the client is the problem (429) or the route is full (503). */
export function refusal(reason: LimitReason): { status: number; statusLine: string; body: string } {
  if (reason === 'clientLimit') {
    return {
      status: 429,
      statusLine: '429 Too Many Requests',
      body: 'too many sessions from your address to this service\n',
    };
  }
  return { status: 503, statusLine: '503 Service Unavailable', body: 'the service has no free session slot\n' };
}
