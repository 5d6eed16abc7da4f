import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  assertOsbError,
  basicAuth,
  operatorLogin,
  osbLogin,
  provisionBody,
} from '@service-foundry/test-support/broker-calls';
import { type Harness, rawHttp, startHarness } from './helpers.js';

const osbHeaders = `Authorization: ${basicAuth(osbLogin)}\r\nX-Broker-API-Version: 2.17`;

/**
 * Errors Fastify and Node produce themselves — routing, parsing, limits, the HTTP parser —
 * reach clients in the OSB shape like every other error, and change nothing.
 */
describe("broker: Fastify's and Node's own errors are OSB error bodies", () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(async () => {
    await h?.close();
  });

  const cases: Array<{ name: string; head: string; body?: string; status: number; error: string; mentions: RegExp }> = [
    {
      name: 'a path segment over 1024 characters',
      head: `GET /v2/service_instances/${'a'.repeat(2000)} HTTP/1.1\r\n${osbHeaders}`,
      status: 414,
      error: 'URITooLong',
      mentions: /1024 characters/,
    },
    {
      name: 'a URL over 4096 bytes',
      head: `GET /v2/catalog?${'x=1&'.repeat(1100)} HTTP/1.1\r\n${osbHeaders}`,
      status: 414,
      error: 'URITooLong',
      mentions: /at most 4096/,
    },
    {
      name: 'request line and headers over 16 KiB',
      head: `GET /v2/${'a'.repeat(20_000)} HTTP/1.1\r\n${osbHeaders}`,
      status: 431,
      error: 'RequestHeaderFieldsTooLarge',
      mentions: /16 KiB/,
    },
    {
      name: 'bad percent-encoding',
      head: `GET /v2/service_instances/%zz HTTP/1.1\r\n${osbHeaders}`,
      status: 400,
      error: 'BadRequest',
      mentions: /percent-encoding/,
    },
    {
      name: 'a truncated UTF-8 escape',
      head: `GET /v2/%E0%A4%A HTTP/1.1\r\n${osbHeaders}`,
      status: 400,
      error: 'BadRequest',
      mentions: /percent-encoding/,
    },
    {
      name: 'a method HTTP does not know',
      head: `FROB /v2/catalog HTTP/1.1\r\n${osbHeaders}`,
      status: 400,
      error: 'BadRequest',
      mentions: /not valid HTTP/,
    },
    {
      name: 'a request line that is not HTTP',
      head: 'hello there',
      status: 400,
      error: 'BadRequest',
      mentions: /not valid HTTP/,
    },
    {
      name: 'a method the path does not answer',
      head: `POST /v2/catalog HTTP/1.1\r\n${osbHeaders}`,
      status: 405,
      error: 'MethodNotAllowed',
      mentions: /answers GET, HEAD/,
    },
    {
      name: 'a method no route has',
      head: `PROPFIND /v2/catalog HTTP/1.1\r\n${osbHeaders}`,
      status: 405,
      error: 'MethodNotAllowed',
      mentions: /PROPFIND/,
    },
    {
      name: 'an unknown route',
      head: `GET /v3/catalog HTTP/1.1\r\n${osbHeaders}`,
      status: 404,
      error: 'NotFound',
      mentions: /no route GET \/v3\/catalog/,
    },
    {
      name: 'a body over 64 KiB',
      head: `PUT /v2/service_instances/big?accepts_incomplete=true HTTP/1.1\r\n${osbHeaders}\r\nContent-Type: application/json`,
      body: JSON.stringify(provisionBody({ context: { blob: 'x'.repeat(70_000) } })),
      status: 413,
      error: 'PayloadTooLarge',
      mentions: /65536 bytes/,
    },
    {
      name: 'malformed JSON',
      head: `PUT /v2/service_instances/bad?accepts_incomplete=true HTTP/1.1\r\n${osbHeaders}\r\nContent-Type: application/json`,
      body: '{"service_id": ',
      status: 400,
      error: 'MalformedJson',
      mentions: /not valid JSON/,
    },
    {
      name: 'a body that is not JSON',
      head: `PUT /v2/service_instances/bad?accepts_incomplete=true HTTP/1.1\r\n${osbHeaders}\r\nContent-Type: application/xml`,
      body: '<provision/>',
      status: 400,
      error: 'UnsupportedMediaType',
      mentions: /must be JSON/,
    },
    {
      name: 'a Content-Length larger than the body',
      head: `PUT /v2/service_instances/bad?accepts_incomplete=true HTTP/1.1\r\n${osbHeaders}\r\nContent-Type: application/json\r\nContent-Length: 10`,
      body: '{}',
      status: 400,
      error: 'BadRequest',
      mentions: /./,
    },
  ];

  for (const c of cases) {
    it(`${c.name} → ${c.status} ${c.error}`, async () => {
      const before = await h.dump();
      const res = await rawHttp(h.broker.url, c.head, c.body);
      assert.equal(res.status, c.status, res.text.slice(0, 300));
      assertOsbError(res.body, c.error);
      assert.match((res.body as { description: string }).description, c.mentions);
      assert.equal(await h.dump(), before);
    });
  }

  it('a 405 lists the methods the path answers in Allow', async () => {
    const res = await h.call('DELETE', '/sf/v1/nodes', { auth: operatorLogin });
    assert.equal(res.status, 405);
    assert.equal(res.headers.get('allow'), 'GET, HEAD');
    assertOsbError(res.body, 'MethodNotAllowed');
  });

  it('an unauthenticated request to an unknown route learns nothing but 401', async () => {
    const res = await h.call('POST', '/v2/catalog', { auth: null });
    assert.equal(res.status, 401);
    assertOsbError(res.body, 'Unauthorized');
  });
});
