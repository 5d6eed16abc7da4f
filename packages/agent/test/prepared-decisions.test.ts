import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decidePrepared } from '../src/prepared-decisions.js';
import { assignment, baseName, container, observed, t0 } from './decision-fixtures.js';

/** One test per row of the table in src/prepared-decisions.ts; no Docker, no etcd. */

const ready = { pass: { prerequisites: { kind: 'ready', volume: baseName } as const } };
/** A relocation's target: no role until the switch gives it one, with the new epoch. */
const seeded = assignment();

describe('a container prepared during the final round of a relocation', () => {
  it('p1: an existing container is left as it is, running or not', () => {
    for (const found of [container(), container({ running: false })]) {
      assert.deepEqual(decidePrepared(true, 'primary')(seeded, observed({ container: found, ...ready }), t0), {
        actions: [],
        next: 'end-pass',
      });
    }
  });

  it('p2: the copy of a replicated service that becomes a replica gets nothing: its upstream comes later', () => {
    assert.deepEqual(decidePrepared(true, 'replica')(seeded, observed(ready), t0), { actions: [], next: 'end-pass' });
  });

  it('p3: looks up the prerequisites, with the generation for a replicated service; no primary claim is read', () => {
    assert.deepEqual(decidePrepared(true, 'primary')(seeded, observed(), t0), {
      actions: [{ kind: 'look-up-prerequisites', generation: 0 }],
      next: 'look-again',
    });
    assert.deepEqual(decidePrepared(false, 'primary')(assignment({ serviceName: 'web' }), observed(), t0), {
      actions: [{ kind: 'look-up-prerequisites' }],
      next: 'look-again',
    });
  });

  it('p4: a missing image or secret creates nothing and writes no status', () => {
    for (const prerequisites of [
      { kind: 'image-missing', image: 'pg:1' } as const,
      { kind: 'secret-missing' } as const,
    ]) {
      assert.deepEqual(decidePrepared(true, 'primary')(seeded, observed({ pass: { prerequisites } }), t0), {
        actions: [],
        next: 'end-pass',
      });
    }
  });

  it('p5: creates the volume and the container as the create rule does, writes no status and starts nothing', () => {
    assert.deepEqual(decidePrepared(true, 'primary')(seeded, observed(ready), t0), {
      actions: [
        { kind: 'ensure-volume', name: baseName, generation: 0 },
        {
          kind: 'create-container',
          volume: baseName,
          replicated: { role: 'primary', generation: 0 },
        },
      ],
      next: 'end-pass',
    });
    assert.deepEqual(decidePrepared(true, 'primary')(assignment({ generation: 2 }), observed(ready), t0).actions, [
      { kind: 'ensure-volume', name: baseName, generation: 2 },
      { kind: 'create-container', volume: baseName, replicated: { role: 'primary', generation: 2 } },
    ]);
    assert.deepEqual(decidePrepared(false, 'primary')(assignment({ serviceName: 'web' }), observed(ready), t0), {
      actions: [
        { kind: 'ensure-volume', name: baseName },
        { kind: 'create-container', volume: baseName },
      ],
      next: 'end-pass',
    });
  });
});
