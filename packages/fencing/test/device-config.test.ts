import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidInputError } from '@service-foundry/core';
import { keepRedactedSecrets, parseFenceDevices, redactFenceDevices, redactText, worstCaseMs } from '../src/index.js';

const problemsOf = (input: unknown): string[] => {
  try {
    parseFenceDevices(input);
  } catch (error) {
    assert.ok(error instanceof InvalidInputError);
    return [...error.problems];
  }
  assert.fail('expected the input to be rejected');
};

describe('fence device config', () => {
  it('fills in defaults and freezes', () => {
    const config = parseFenceDevices({ levels: [{ devices: [{ agent: 'fence_ipmilan' }] }] });
    assert.deepEqual(config.levels[0]?.devices[0], {
      agent: 'fence_ipmilan',
      options: {},
      timeoutSeconds: 30,
      retries: 1,
      confirm: 'status',
    });
    assert.ok(Object.isFrozen(config.levels[0]?.devices[0]));
  });

  it('rejects agents a shell would interpret and relative paths', () => {
    for (const agent of [
      'fence_x; rm -rf /',
      'fence x',
      '../fence_x',
      'bin/fence_x',
      '$(id)',
      '',
      '/usr/sbin/fence\nx',
    ]) {
      assert.ok(problemsOf({ levels: [{ devices: [{ agent }] }] }).length > 0, agent);
    }
    parseFenceDevices({ levels: [{ devices: [{ agent: '/opt/fence/fence_custom' }, { agent: 'fence_sf_sim' }] }] });
  });

  it('rejects options that could smuggle another line or override the action', () => {
    const device = (options: unknown) => ({ levels: [{ devices: [{ agent: 'fence_dummy', options }] }] });
    assert.ok(problemsOf(device({ password: 'x\naction=on' })).length > 0);
    assert.ok(problemsOf(device({ action: 'on' })).length > 0);
    assert.ok(problemsOf(device({ nodename: 'other' })).length > 0);
    assert.ok(problemsOf(device({ 'bad name': 'x' })).length > 0);
    assert.ok(problemsOf(device({ ip: { nested: true } })).length > 0);
    parseFenceDevices(device({ ip: '10.0.0.1', ipport: 623, lanplus: true, 'api-version': '1.41' }));
  });

  it('bounds levels, devices, timeouts and retries, and rejects unknown fields', () => {
    assert.ok(problemsOf({ levels: [] }).length > 0);
    assert.ok(problemsOf({ levels: [{ devices: [] }] }).length > 0);
    assert.ok(
      problemsOf({ levels: Array.from({ length: 9 }, () => ({ devices: [{ agent: 'fence_a' }] })) }).length > 0,
    );
    assert.ok(problemsOf({ levels: [{ devices: [{ agent: 'fence_a', timeoutSeconds: 0 }] }] }).length > 0);
    assert.ok(problemsOf({ levels: [{ devices: [{ agent: 'fence_a', retries: -1 }] }] }).length > 0);
    assert.ok(problemsOf({ levels: [{ devices: [{ agent: 'fence_a', confirm: 'maybe' }] }] }).length > 0);
    assert.deepEqual(problemsOf({ levels: [{ devices: [{ agent: 'fence_a' }] }], extra: 1 }), [
      '(root): unknown field "extra"',
    ]);
  });

  it('redacts secrets for display and keeps them on a round trip', () => {
    const stored = parseFenceDevices({
      levels: [
        { devices: [{ agent: 'fence_ipmilan', options: { ip: '10.0.0.1', username: 'admin', password: 's3cret' } }] },
      ],
    });
    const shown = redactFenceDevices(stored);
    assert.deepEqual(shown.levels[0]?.devices[0]?.options, {
      ip: '10.0.0.1',
      username: 'admin',
      password: '[redacted]',
    });
    const edited = parseFenceDevices({
      levels: [
        {
          devices: [
            { ...shown.levels[0]?.devices[0], options: { ...shown.levels[0]?.devices[0]?.options, ip: '10.0.0.2' } },
          ],
        },
      ],
    });
    const merged = keepRedactedSecrets(edited, stored);
    assert.deepEqual(merged.levels[0]?.devices[0]?.options, { ip: '10.0.0.2', username: 'admin', password: 's3cret' });
    // A marker with nothing stored behind it is an error, never stored as the password.
    assert.throws(() => keepRedactedSecrets(edited, undefined), /no stored value/);
  });

  it('scrubs secrets from free text', () => {
    assert.equal(redactText('login with s3cret failed', ['s3cret']), 'login with [redacted] failed');
    assert.equal(redactText('passwd=abc token: xyz', []), 'passwd=[redacted] token: [redacted]');
  });

  it('computes a worst-case run time from timeouts, retries and confirmation', () => {
    const config = parseFenceDevices({
      levels: [
        {
          devices: [
            { agent: 'a', timeoutSeconds: 2, retries: 1 },
            { agent: 'b', timeoutSeconds: 1, retries: 0 },
          ],
        },
        { devices: [{ agent: 'c', timeoutSeconds: 3, retries: 0, confirm: 'exit-code' }] },
      ],
    });
    // level 1: max(2 × (2 × 2 s + 100 ms), 2 × 1 s) = 8.2 s; level 2: 3 s.
    assert.equal(worstCaseMs(config.levels, 100), 11_200);
  });
});
