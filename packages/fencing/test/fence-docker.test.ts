import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createServer, type Server } from 'node:tls';
import { promisify } from 'node:util';
import { silentLogger, suiteTempDir, uniqueId } from '@service-foundry/test-support';
import { docker, removeContainer } from '@service-foundry/test-support/docker';
import { powerOffAndConfirm, runDeviceAction } from '../src/index.js';
import { device, ensureSleepImage, runContext, startSleeper } from './helpers.js';

const run = promisify(execFile);

/** A CA, a server certificate for 127.0.0.1 and a client certificate, as `dockerd --tlsverify` would use. */
async function makeCertificates(
  dir: string,
): Promise<Record<'ca' | 'serverCert' | 'serverKey' | 'clientCert' | 'clientKey', string>> {
  const p = (name: string) => join(dir, name);
  const newKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await run('openssl', [
    'req',
    '-x509',
    ...newKey,
    '-keyout',
    p('ca.key'),
    '-out',
    p('ca.pem'),
    '-days',
    '1',
    '-subj',
    '/CN=sf-fencing-test-ca',
  ]);
  await writeFile(p('server.ext'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  await writeFile(p('client.ext'), 'extendedKeyUsage=clientAuth\n');
  for (const who of ['server', 'client']) {
    await run('openssl', [
      'req',
      ...newKey,
      '-keyout',
      p(`${who}.key`),
      '-out',
      p(`${who}.csr`),
      '-subj',
      `/CN=${who}`,
    ]);
    await run('openssl', [
      'x509',
      '-req',
      '-in',
      p(`${who}.csr`),
      '-CA',
      p('ca.pem'),
      '-CAkey',
      p('ca.key'),
      '-CAcreateserial',
      '-out',
      p(`${who}.pem`),
      '-days',
      '1',
      '-extfile',
      p(`${who}.ext`),
    ]);
  }
  return {
    ca: p('ca.pem'),
    serverCert: p('server.pem'),
    serverKey: p('server.key'),
    clientCert: p('client.pem'),
    clientKey: p('client.key'),
  };
}

/**
 * fence_docker (Debian's fence-agents, unchanged) always speaks HTTPS: instead of a second
 * dockerd, a TLS endpoint on loopback that requires a client certificate and pipes each
 * connection to the host's Docker socket.
 */
describe('fence_docker against the Docker API over TLS', () => {
  const dir = suiteTempDir('sf-fencing-docker-tls');
  let server: Server;
  let port: number;
  let certs: Awaited<ReturnType<typeof makeCertificates>>;
  let containerId: string;
  const sockets = new Set<Socket>();
  const log = silentLogger();

  before(async () => {
    certs = await makeCertificates(dir.path);
    server = createServer(
      {
        key: await readFile(certs.serverKey),
        cert: await readFile(certs.serverCert),
        ca: await readFile(certs.ca),
        requestCert: true,
        rejectUnauthorized: true,
      },
      (client) => {
        const upstream = connect('/var/run/docker.sock');
        sockets.add(client);
        sockets.add(upstream);
        const close = () => {
          client.destroy();
          upstream.destroy();
          sockets.delete(client);
          sockets.delete(upstream);
        };
        client.on('error', close).on('close', close);
        upstream.on('error', close).on('close', close);
        client.pipe(upstream).pipe(client);
      },
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as { port: number }).port;
    containerId = await startSleeper(await ensureSleepImage(), uniqueId('sf-fencing-docker'), {
      'sf.test': 'fencing-fence-docker',
    });
  });

  after(async () => {
    if (containerId) await removeContainer(containerId);
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server?.close(resolve));
  });

  const fenceDocker = () =>
    device({
      agent: 'fence_docker',
      options: {
        ip: '127.0.0.1',
        ipport: port,
        plug: containerId,
        tlscert: certs.clientCert,
        tlskey: certs.clientKey,
        tlscacert: certs.ca,
        // fence_docker defaults to API 1.11, older than any current engine accepts.
        api_version: '1.41',
      },
      timeoutSeconds: 30,
      retries: 0,
    });

  it('status ON, off (container killed, exit 137), status OFF', async () => {
    const before = await runDeviceAction(fenceDocker(), 'status', runContext(log));
    assert.equal(before.power, 'on', before.reason);
    assert.match(before.stdout, /Status: ON/);

    const outcome = await powerOffAndConfirm(1, fenceDocker(), runContext(log));
    assert.equal(outcome.ok, true, outcome.reason);
    assert.deepEqual(
      outcome.steps.map((s) => [s.action, s.exitCode]),
      [
        ['off', 0],
        ['status', 2],
      ],
    );
    const state = (await docker.getContainer(containerId).inspect()).State;
    assert.equal(state.Running, false);
    assert.equal(state.ExitCode, 137);

    const afterwards = await runDeviceAction(fenceDocker(), 'status', runContext(log));
    assert.equal(afterwards.power, 'off');
    assert.equal(afterwards.exitCode, 2);
  });

  it('fails, and says so, when the TLS client certificate is not trusted', async () => {
    const config = fenceDocker();
    const untrusted = device({
      ...config,
      options: { ...config.options, tlscert: certs.serverCert, tlskey: certs.serverKey },
    });
    const step = await runDeviceAction(untrusted, 'status', runContext(log));
    assert.equal(step.ok, false);
    assert.equal(step.power, 'unknown');
    assert.match(step.stderr, /Connection failed/);
  });
});
