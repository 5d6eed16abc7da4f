import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { suiteTempDir } from '@service-foundry/test-support';
import { clientKey } from '../src/client-key.js';
import { openFileLimit, sessionBudget } from '../src/fd-budget.js';

describe('clientKey', () => {
  it('counts an IPv4 client by its address, also when it arrives IPv4-mapped', () => {
    assert.equal(clientKey('203.0.113.7'), '203.0.113.7');
    assert.equal(clientKey('::ffff:203.0.113.7'), '203.0.113.7');
    assert.equal(clientKey('::FFFF:cb00:7107'), '203.0.113.7');
  });

  it('counts every address of one IPv6 /64 as one client, however it is written', () => {
    const key = '2001:db8:1:2::/64';
    for (const address of [
      '2001:db8:1:2::1',
      '2001:0db8:0001:0002:ffff:ffff:ffff:ffff',
      '2001:DB8:1:2:0:0:0:9',
      '2001:db8:1:2::a%eth0',
      '2001:db8:1:2:0:0:1.2.3.4',
    ]) {
      assert.equal(clientKey(address), key, address);
    }
    assert.notEqual(clientKey('2001:db8:1:3::1'), key, 'the next /64 is another client');
    assert.equal(clientKey('::1'), '0:0:0:0::/64');
  });

  it('gives a socket without an address one shared key', () => {
    assert.equal(clientKey(undefined), 'unknown');
  });
});

describe('session budget', () => {
  const dir = suiteTempDir('sf-router-limits');

  const limitsFile = async (soft: string): Promise<string> => {
    const file = join(dir.path, `limits-${soft}`);
    await writeFile(
      file,
      [
        'Limit                     Soft Limit           Hard Limit           Units     ',
        'Max processes             95632                95632                processes ',
        `Max open files            ${soft.padEnd(20)} 1048576              files     `,
        '',
      ].join('\n'),
    );
    return file;
  };

  it('reads the soft RLIMIT_NOFILE of the process', async () => {
    assert.equal(openFileLimit(await limitsFile('20000')), 20_000);
    assert.equal(openFileLimit(await limitsFile('unlimited')), 1_048_576);
    assert.equal(openFileLimit(join(dir.path, 'missing')), 1024, 'not Linux: the usual default');
    assert.ok(openFileLimit() >= 1024, 'this machine');
  });

  it('keeps two descriptors per session and a tenth (at least 128) in reserve', () => {
    assert.deepEqual(sessionBudget(null, 20_000), { maxOpenSessions: 9000, nofile: 20_000, exceedsLimit: false });
    assert.equal(sessionBudget(null, 1024).maxOpenSessions, 448);
    assert.equal(sessionBudget(null, 200).maxOpenSessions, 36);
  });

  it('takes a configured budget as is and says when the descriptors cannot cover it', () => {
    assert.deepEqual(sessionBudget(500, 20_000), { maxOpenSessions: 500, nofile: 20_000, exceedsLimit: false });
    assert.equal(sessionBudget(15_000, 20_000).exceedsLimit, true);
  });
});
