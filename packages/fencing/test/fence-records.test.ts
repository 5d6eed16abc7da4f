import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BadRecordError, ErrorCodes } from '@service-foundry/core';
import { type FenceHistoryEntry, fenceDevicesCodec, fenceHistoryCodec, storedFenceCodec } from '../src/index.js';

const at = '2025-01-01T00:00:00.000Z';

function refuses(parse: () => unknown, key: string, field: RegExp): void {
  assert.throws(parse, (error: unknown) => {
    assert.ok(error instanceof BadRecordError, String(error));
    assert.equal(error.code, ErrorCodes.badRecord);
    assert.equal(error.key, key);
    assert.ok(
      error.problems.some((p) => field.test(p)),
      `${error.problems.join('; ')} should match ${field}`,
    );
    return true;
  });
}

describe('fencing record codecs', () => {
  const fenceKey = '/sf/fence/n1';
  const claim = { node: 'n1', state: 'fencing', reason: 'gone', by: 'controller', at, attemptId: 'a1', deadline: at };

  it('reads fence/<node> with its attempt bookkeeping, and refuses a malformed one', () => {
    assert.deepEqual(storedFenceCodec.parse(fenceKey, { ...claim, extra: 1 }), { ...claim, extra: 1 });
    refuses(() => storedFenceCodec.parse(fenceKey, { ...claim, state: 'asleep' }), fenceKey, /^\/state must be one of/);
    refuses(() => storedFenceCodec.parse(fenceKey, { ...claim, deadline: 5 }), fenceKey, /^\/deadline/);
    const { by: _by, ...noBy } = claim;
    refuses(() => storedFenceCodec.parse(fenceKey, noBy), fenceKey, /^\/by is required/);
  });

  it('reads a fence-history entry, exit codes and signals may be null', () => {
    const key = '/sf/fence-history/000000000000001-a1';
    const entry: FenceHistoryEntry = {
      id: 'a1',
      node: 'n1',
      action: 'fence',
      by: 'alice',
      reason: 'test',
      startedAt: at,
      finishedAt: at,
      durationMs: 10,
      result: 'fenced',
      level: 1,
      detail: '',
      ranDevices: true,
      recorded: true,
      levels: [
        {
          level: 1,
          ok: true,
          durationMs: 10,
          devices: [
            {
              level: 1,
              device: 'dummy',
              agent: 'fence_dummy',
              options: { password: '[redacted]', port: 1, ssl: true },
              ok: true,
              reason: '',
              durationMs: 10,
              steps: [
                {
                  action: 'off',
                  ok: true,
                  attempts: 1,
                  exitCode: null,
                  signal: null,
                  timedOut: false,
                  stdout: '',
                  stderr: '',
                  durationMs: 5,
                  reason: '',
                },
              ],
            },
          ],
        },
      ],
    };
    assert.deepEqual(fenceHistoryCodec.parse(key, structuredClone(entry)), entry);
    refuses(() => fenceHistoryCodec.parse(key, { ...entry, result: 'maybe' }), key, /^\/result must be one of/);
    const step = { ...entry.levels[0]?.devices[0]?.steps[0], exitCode: 'zero' };
    const broken = structuredClone(entry);
    (broken.levels[0]?.devices[0] as { steps: unknown[] }).steps = [step];
    refuses(() => fenceHistoryCodec.parse(key, broken), key, /^\/levels\/0\/devices\/0\/steps\/0\/exitCode/);
  });

  it('reads fence-devices/<node> through its config schema', () => {
    const key = '/sf/fence-devices/n1';
    const stored = {
      node: 'n1',
      updatedAt: at,
      updatedBy: 'alice',
      levels: [{ devices: [{ agent: 'fence_dummy', options: {}, timeoutSeconds: 30, retries: 1, confirm: 'status' }] }],
    };
    assert.deepEqual(fenceDevicesCodec.parse(key, structuredClone(stored)), stored);
    refuses(() => fenceDevicesCodec.parse(key, { ...stored, levels: [] }), key, /^\/levels/);
  });
});
