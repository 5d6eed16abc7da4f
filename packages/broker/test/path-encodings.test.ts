import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  assertOsbError,
  basicAuth,
  osbLogin,
  postgresServiceId,
  smallPlanId,
  viewerLogin,
} from '@service-foundry/test-support/broker-calls';
import { type Harness, rawHttp, startHarness } from './helpers.js';

/**
 * Spellings of `/v2/catalog`: percent-encoded letters and digits (Fastify decodes them and
 * routes to /v2/catalog), doubly encoded ones, dot segments, doubled slashes, other case,
 * encoded slashes, trailing bits. None may skip the API version check.
 */
const catalogSpellings = [
  '/v2/catalog',
  '/%762/catalog',
  '/%56%32/catalog',
  '/v%32/catalog',
  '/%76%32/catalog',
  '/%76%32/%63%61%74%61%6c%6f%67',
  '/v2/%63atalog',
  '/v2/catalo%67',
  '/%2576%32/catalog',
  '/%25762/catalog',
  '//v2/catalog',
  '///v2/catalog',
  '/v2//catalog',
  '/v2/./catalog',
  '/./v2/catalog',
  '/v2/x/../catalog',
  '/v2/%2e/catalog',
  '/v2/%2E%2E/v2/catalog',
  '/V2/catalog',
  '/v2/CATALOG',
  '/v2/catalog/',
  '/v2%2fcatalog',
  '/v2%2Fcatalog',
  '/v2/catalog%00',
  '/v2/catalog;x=1',
  '/v2/catalog?x=1',
  '/v2/catalog#frag',
  '/v2/catalog%20',
  '/v2/catalog%3F',
  '/%EF%BC%8Fv2/catalog',
  '/v２/catalog',
  '/v2\\catalog',
  '/sf/../v2/catalog',
  '/healthz/../v2/catalog',
  '/%68ealthz',
];

describe('broker: the API version and the login area are checked on the path Fastify routes on', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(async () => {
    await h?.close();
  });

  it('no spelling of /v2/catalog is served without X-Broker-API-Version', async () => {
    const answers: string[] = [];
    for (const path of catalogSpellings) {
      const res = await rawHttp(h.broker.url, `GET ${path} HTTP/1.1\r\nAuthorization: ${basicAuth(osbLogin)}`);
      answers.push(`${path} → ${res.status}`);
      if (path === '/%68ealthz') {
        // Routed to /healthz, which is public and carries no OSB data.
        assert.equal(res.status, 200);
        assert.deepEqual(res.body, { status: 'ok' });
        continue;
      }
      assert.ok([400, 404, 412].includes(res.status), `${path} answered ${res.status} ${res.text.slice(0, 100)}`);
      assert.ok(res.body, `${path}: a JSON body`);
      assert.ok(!res.text.includes('"services"'), `${path} leaked the catalog`);
      assert.match(String((res.body as { sf_code?: string }).sf_code), /^SF_ERR_/, `${path}: an OSB error body`);
    }
    // The spellings Fastify decodes to the route itself meet the version check.
    for (const path of ['/v2/catalog', '/%762/catalog', '/v%32/catalog', '/%76%32/%63%61%74%61%6c%6f%67']) {
      const res = await rawHttp(h.broker.url, `GET ${path} HTTP/1.1\r\nAuthorization: ${basicAuth(osbLogin)}`);
      assert.equal(res.status, 412, `${path}: ${answers.join(', ')}`);
      assertOsbError(res.body, 'PreconditionFailed');
    }
  });

  it('with the version header, an encoded spelling is the same route, for the platform and not for a viewer', async () => {
    const served = await rawHttp(
      h.broker.url,
      `GET /%762/catalog HTTP/1.1\r\nAuthorization: ${basicAuth(osbLogin)}\r\nX-Broker-API-Version: 2.17`,
    );
    assert.equal(served.status, 200);
    const viewer = await rawHttp(
      h.broker.url,
      `GET /%762/catalog HTTP/1.1\r\nAuthorization: ${basicAuth(viewerLogin)}\r\nX-Broker-API-Version: 2.17`,
    );
    assert.equal(viewer.status, 403);
  });

  it('an encoded provision without the version header is refused and writes nothing', async () => {
    const before = await h.dump();
    const body = JSON.stringify({
      service_id: postgresServiceId,
      plan_id: smallPlanId,
      organization_guid: 'o',
      space_guid: 's',
    });
    for (const path of [
      '/%762/service_instances/enc-1?accepts_incomplete=true',
      '/v%32/%73ervice_instances/enc-2?accepts_incomplete=true',
      '/v2/service_instances/enc%2D3?accepts_incomplete=true',
    ]) {
      const res = await rawHttp(
        h.broker.url,
        `PUT ${path} HTTP/1.1\r\nAuthorization: ${basicAuth(osbLogin)}\r\nContent-Type: application/json`,
        body,
      );
      assert.equal(res.status, 412, `${path}: ${res.text}`);
    }
    assert.equal(await h.dump(), before);
  });
});
