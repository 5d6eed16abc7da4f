import assert from 'node:assert/strict';
import { request } from 'node:https';
import { after, before, describe, test } from 'node:test';
import { makeTestPki, type TestPki } from '@service-foundry/test-support/test-pki';
import { callPeer, maxPeerCallQueryBytes, type PeerCall, signRequest, startVolumeServer } from '../src/index.js';
import { clientTlsOptions, readVolumeTls } from '../src/tls.js';
import { testSecret } from './helpers.js';

const peerNames = /^sf-volumes\.[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** One raw HTTPS request with node-b's certificate: what an attacker holding one could send. */
function rawCall(
  url: string,
  path: string,
  options: { method: string; headers: Record<string, string>; body?: string; tls: object },
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      new URL(path, url),
      { ...options.tls, method: options.method, headers: options.headers },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

describe('calls between agents on the volume server (POST /calls/<name>, signed query, no body)', () => {
  const nodes = [
    { name: 'node-a', address: '127.0.0.1' },
    { name: 'node-b', address: '127.0.0.1' },
  ];
  let pki: TestPki;
  const seen: PeerCall[] = [];
  const secret = testSecret();
  let server: Awaited<ReturnType<typeof startVolumeServer>>;
  let tls: ReturnType<typeof clientTlsOptions>;

  before(async () => {
    pki = await makeTestPki(nodes);
    server = await startVolumeServer({
      secret,
      fsync: false,
      tls: pki.volumeTls('node-a'),
      clientNamePattern: peerNames,
      resolveVolumeDir: () => undefined,
      calls: {
        echo: (call) => {
          seen.push(call);
          return { status: 200, body: { from: call.peer, said: call.params.getAll('p') } };
        },
      },
    });
    tls = clientTlsOptions(await readVolumeTls(pki.volumeTls('node-b')));
  });
  after(async () => {
    await server?.close();
    await pki?.remove();
  });

  test('a call reaches its handler with the caller named by its certificate and the signed params', async () => {
    const answer = await callPeer(
      server.url,
      'echo',
      new URLSearchParams([
        ['p', 'a.1.7'],
        ['p', 'b.0.9'],
      ]),
      {
        secret,
        tls,
      },
    );
    assert.deepEqual(answer, { status: 200, body: { from: 'sf-volumes.node-b', said: ['a.1.7', 'b.0.9'] } });
  });

  test('refused, and the handler never runs: wrong secret, a replayed or altered query, GET, a body, an unknown call', async () => {
    const before = seen.length;
    const wrongSecret = await callPeer(server.url, 'echo', new URLSearchParams({ p: 'x' }), {
      secret: testSecret(),
      tls,
    });
    assert.equal(wrongSecret.status, 401);

    const path = '/calls/echo?p=x';
    const headers = { ...signRequest(secret, 'POST', path) };
    assert.equal((await rawCall(server.url, path, { method: 'POST', headers, tls })).status, 200);
    const replay = await rawCall(server.url, path, { method: 'POST', headers, tls });
    assert.equal(replay.status, 401, 'the same nonce twice');
    const altered = await rawCall(server.url, '/calls/echo?p=y', {
      method: 'POST',
      headers: { ...signRequest(secret, 'POST', path) },
      tls,
    });
    assert.equal(altered.status, 401, 'a query other than the one signed');

    const get = await rawCall(server.url, path, {
      method: 'GET',
      headers: { ...signRequest(secret, 'GET', path) },
      tls,
    });
    assert.equal(get.status, 405);
    const withBody = await rawCall(server.url, path, {
      method: 'POST',
      headers: { ...signRequest(secret, 'POST', path), 'content-length': '2' },
      body: '{}',
      tls,
    });
    assert.equal(withBody.status, 400);
    assert.match(withBody.body, /no body/);
    const unknown = await callPeer(server.url, 'promote', new URLSearchParams(), { secret, tls });
    assert.equal(unknown.status, 404);
    const proto = await rawCall(server.url, '/calls/__proto__', {
      method: 'POST',
      headers: { ...signRequest(secret, 'POST', '/calls/__proto__') },
      tls,
    });
    assert.equal(proto.status, 404, 'no handler from the prototype chain');
    assert.equal(seen.length, before + 1, 'only the one well-signed call ran');
  });

  test('the caller refuses a name that is not a call name and a query too long to send', async () => {
    await assert.rejects(callPeer(server.url, '../volumes', new URLSearchParams(), { secret, tls }), TypeError);
    const long = new URLSearchParams({ p: 'x'.repeat(maxPeerCallQueryBytes) });
    await assert.rejects(callPeer(server.url, 'echo', long, { secret, tls }), RangeError);
  });
});
