import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { InvalidInputError } from '@service-foundry/core';
import { tempDirFor } from '@service-foundry/test-support';
import type { ClusterFile } from '../src/cluster/cluster-file.js';
import { ComponentConfigs } from '../src/cluster/component-configs.js';
import { ClusterPki } from '../src/cluster/pki.js';

const load = async (file: string) => new X509Certificate(await readFile(file));

/**
 * The per-node certificates `sf up` issues for TLS between nodes (docs/security.md "In
 * flight"): what each names and may be used for, that they are made again when a node's
 * address changes, and that agents get finished certificates, never the CA key.
 */
test('each node gets a volume and a service certificate naming its address (and the router)', async (t) => {
  const dir = await tempDirFor(t, 'sf-pki');
  const pki = new ClusterPki(join(dir, 'pki'));
  const nodes = [
    { name: 'node-1', address: '10.20.0.11' },
    { name: 'node-2', address: '10.20.0.12' },
  ];
  await pki.ensure(nodes, { routerHosts: ['10.20.0.1', 'db.example.test'] });
  const ca = await load(pki.caFile);

  const volume = await load(pki.volumeTls('node-1').certFile);
  assert.equal(volume.subject, 'CN=sf-volumes.node-1');
  assert.equal(volume.subjectAltName, 'IP Address:10.20.0.11');
  assert.deepEqual(volume.keyUsage?.sort(), ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2'], 'server and client');
  assert.ok(volume.checkIssued(ca) && volume.verify(ca.publicKey));

  const service = await load(pki.serviceTls('node-2').certFile);
  assert.equal(service.subject, 'CN=sf-service.node-2');
  assert.equal(service.subjectAltName, 'IP Address:10.20.0.12, IP Address:10.20.0.1, DNS:db.example.test');
  assert.deepEqual(service.keyUsage, ['1.3.6.1.5.5.7.3.1'], 'server only');
  assert.ok(service.checkIssued(ca) && service.verify(ca.publicKey));
  assert.ok(service.checkHost('db.example.test') && service.checkIP('10.20.0.1') && !service.checkIP('10.20.0.11'));
  for (const file of [pki.volumeTls('node-1').keyFile, pki.serviceTls('node-2').keyFile]) {
    assert.equal((await stat(file)).mode & 0o777, 0o600, file);
  }

  // Kept while its names match; made again when the node's address changes.
  const before = service.serialNumber;
  await pki.ensure(nodes, { routerHosts: ['10.20.0.1', 'db.example.test'] });
  assert.equal((await load(pki.serviceTls('node-2').certFile)).serialNumber, before);
  await pki.ensure([nodes[0] ?? assert.fail(), { name: 'node-2', address: '10.20.0.99' }], {
    routerHosts: ['10.20.0.1', 'db.example.test'],
  });
  const moved = await load(pki.serviceTls('node-2').certFile);
  assert.notEqual(moved.serialNumber, before);
  assert.ok(moved.checkIP('10.20.0.99'));

  // A host that is neither an address nor a DNS name never reaches openssl's config.
  await assert.rejects(pki.ensure(nodes, { routerHosts: ['x,DNS:evil'] }), InvalidInputError);

  // What the agent of node-1 is configured with: its own files, never the CA key.
  const cluster = {
    externalEtcd: [],
    etcdClientPort: 2379,
    keyspaceRoot: '/sf',
    clusterId: 'c1',
    routerHost: '10.20.0.1',
  };
  const configs = new ComponentConfigs(cluster as Partial<ClusterFile> as ClusterFile, pki, dir);
  const agent = configs.agent(nodes[0] ?? assert.fail(), 'a-volume-secret-of-the-cluster');
  assert.deepEqual(agent.volumes.tls, pki.volumeTls('node-1'));
  assert.deepEqual(agent.serviceTls, pki.serviceTls('node-1'));
  assert.ok(!JSON.stringify(agent).includes('ca.key'));
  assert.equal(configs.broker({ name: 'broker-1', port: 8470 }).serviceCaFile, pki.caFile);
});
