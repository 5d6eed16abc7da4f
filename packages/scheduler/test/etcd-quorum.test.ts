import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { quorumAfterFencing, urlHost } from '../src/controller/etcd-quorum.js';

const addresses = new Map([
  ['n1', '10.0.0.1'],
  ['n2', '10.0.0.2'],
  ['n3', '10.0.0.3'],
]);
const inNodes = [1, 2, 3].map((i) => ({ name: `etcd-${i}`, hosts: [`10.0.0.${i}`] }));

describe('etcd quorum once a node is fenced (members on the nodes themselves)', () => {
  it('the member on the node to fence counts as down; the others on up nodes as alive', () => {
    const up = new Set(['n1', 'n2', 'n3']);
    assert.deepEqual(quorumAfterFencing({ members: inNodes, nodeAddresses: addresses, upNodes: up, fencing: 'n1' }), {
      ok: true,
    });
  });

  it('refuses to power off the node whose member a quorum needs (another node is down or fenced)', () => {
    const verdict = quorumAfterFencing({
      members: inNodes,
      nodeAddresses: addresses,
      upNodes: new Set(['n3']),
      fencing: 'n1',
    });
    assert.equal(verdict.ok, false);
    assert.match(
      verdict.ok ? '' : verdict.reason,
      /fencing node n1 would leave etcd 1 of 3 members, below its quorum of 2 \(down then: etcd-1 \(on n1\), etcd-2 \(on n2\)\)/,
    );
  });

  it('members on hosts that are no node count as alive: fencing never touches them', () => {
    const external = [1, 2, 3].map((i) => ({ name: `etcd-${i}`, hosts: [`10.9.0.${i}`] }));
    assert.equal(
      quorumAfterFencing({ members: external, nodeAddresses: addresses, upNodes: new Set(), fencing: 'n1' }).ok,
      true,
    );
  });

  it('a node without a member may always be fenced when the members are up', () => {
    const two = inNodes.slice(1);
    assert.equal(
      quorumAfterFencing({ members: two, nodeAddresses: addresses, upNodes: new Set(['n2', 'n3']), fencing: 'n1' }).ok,
      true,
    );
  });

  it('reads the host of a member URL, IPv6 included', () => {
    assert.equal(urlHost('https://10.0.0.1:2379'), '10.0.0.1');
    assert.equal(urlHost('https://[fd00::1]:2380'), 'fd00::1');
    assert.equal(urlHost('not a url'), undefined);
  });
});
