import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { makeTempDir, startTestEtcd } from '../src/index.js';

describe('startTestEtcd', () => {
  it('gives each fixture and each isolate() a keyspace of its own, and stop() twice is fine', async () => {
    const etcd = await startTestEtcd();
    try {
      const first = etcd.keys;
      await etcd.client.put(first.node('n1')).value('{}').exec();
      const second = etcd.isolate();
      assert.notEqual(second.root, first.root);
      assert.equal(etcd.keys, second);
      assert.equal(await etcd.client.get(second.node('n1')).string(), null);
      assert.ok(etcd.pid > 0);
    } finally {
      await etcd.stop();
    }
    await etcd.stop();
    await assert.rejects(fetch(`${etcd.endpoint}/health`));
  });

  it('tries again on new ports, then fails with what etcd said, leaving no data folder behind', async () => {
    // A temp dir of this test's own (other test files make etcd folders at the same time).
    const tmp = await makeTempDir('sf-test-support');
    const previous = process.env.TMPDIR;
    process.env.TMPDIR = tmp.path;
    try {
      const missing = '/nonexistent/sf-test-support.pem';
      const client = { caFile: missing, certFile: missing, keyFile: missing };
      const tls = { ...client, client };
      await assert.rejects(
        startTestEtcd({ tls, attempts: 2, startTimeoutMs: 2000 }),
        /etcd did not start in 2 attempts/,
      );
      assert.deepEqual(await readdir(tmp.path), []);
    } finally {
      if (previous === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = previous;
      await tmp.remove();
    }
  });
});
