import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decideShipped, decideStandalone } from '../src/standalone-decisions.js';
import {
  address,
  applied,
  assignment,
  baseName,
  container,
  grantedClaim,
  observed,
  refusedClaim,
  status,
  t0,
} from './decision-fixtures.js';

/** One test per row of the tables in src/standalone-decisions.ts; no Docker, no etcd. */

const server = assignment({ serviceName: 'web', planName: 'tiny' });
const stopped = container({ running: false });

describe('standalone decisions', () => {
  const decide = (o: Parameters<typeof decideStandalone>[1]) => decideStandalone(server, o, t0);

  it('n1: without a container, looks up image and secret', () => {
    assert.deepEqual(decide(observed()), { actions: [{ kind: 'look-up-prerequisites' }], next: 'look-again' });
  });

  it('n2: a missing image fails; a missing secret is waited for', () => {
    const noImage = decide(observed({ pass: { prerequisites: { kind: 'image-missing', image: 'web:1' } } }));
    assert.deepEqual(noImage, {
      actions: [
        { kind: 'write-status', status: { state: 'failed', message: 'image web:1 not found: run `sf images build`' } },
      ],
      next: 'end-pass',
    });
    assert.deepEqual(decide(observed({ pass: { prerequisites: { kind: 'secret-missing' } } })).actions, [
      { kind: 'write-status', status: { state: 'creating', message: 'waiting for the instance secret' } },
      { kind: 'retry-after', ms: 1000 },
    ]);
  });

  it('n3: creates a volume and a container named after the replica', () => {
    const step = decide(observed({ pass: { prerequisites: { kind: 'ready', volume: baseName } } }));
    assert.deepEqual(step, {
      actions: [
        { kind: 'write-status', status: { state: 'creating', message: 'creating volume and container' } },
        { kind: 'ensure-volume', name: baseName },
        { kind: 'create-container', volume: baseName },
      ],
      next: 'look-again',
    });
  });

  it('n4: a running container with its own running status is left alone', () => {
    assert.deepEqual(decide(observed({ container: container(), status: status() })), { actions: [], next: 'end-pass' });
  });

  it('n5: a recent failure backs off, for a running container only after its own', () => {
    const failed = status({ state: 'failed' }, 1000);
    assert.deepEqual(decide(observed({ container: container(), status: failed })).actions, [
      { kind: 'retry-after', ms: 1500 },
    ]);
    assert.deepEqual(
      decide(observed({ container: stopped, status: status({ state: 'failed', containerId: 'x' }, 0) })),
      {
        actions: [{ kind: 'retry-after', ms: 2500 }],
        next: 'end-pass',
      },
    );
    const other = status({ state: 'failed', containerId: 'x' }, 0);
    assert.deepEqual(decide(observed({ container: container(), status: other })).actions, [
      { kind: 'await-ready', containerId: 'c1' },
    ]);
  });

  it('n6: a running container not (yet) reported running is waited for', () => {
    assert.deepEqual(decide(observed({ container: container() })), {
      actions: [{ kind: 'await-ready', containerId: 'c1' }],
      next: 'look-again',
    });
  });

  it('n7: a stopped container whose status says it ran: the exit is reported first', () => {
    for (const state of ['running', 'starting'] as const) {
      assert.deepEqual(decide(observed({ container: stopped, status: status({ state }) })), {
        actions: [{ kind: 'report-exit', containerId: 'c1' }],
        next: 'end-pass',
      });
    }
  });

  it('n8: otherwise the same container is started again', () => {
    assert.deepEqual(decide(observed({ container: stopped, status: status({ state: 'failed' }, 5000) })), {
      actions: [{ kind: 'start', containerId: 'c1' }],
      next: 'look-again',
    });
  });

  it('n9: once started, it is waited for, or its exit reported', () => {
    assert.deepEqual(decide(observed({ container: container(), pass: { started: 'c1' } })).actions, [
      { kind: 'await-ready', containerId: 'c1' },
    ]);
    assert.deepEqual(decide(observed({ container: stopped, pass: { started: 'c1' } })), {
      actions: [{ kind: 'report-exit', containerId: 'c1' }],
      next: 'end-pass',
    });
  });

  it('n10: ready: status running with host and port; a failed wait ends the pass', () => {
    assert.deepEqual(decide(observed({ container: container(), pass: { readiness: { ready: true, port: 32005 } } })), {
      actions: [
        {
          kind: 'write-status',
          status: { state: 'running', containerId: 'c1', host: address, port: 32005, message: 'ready' },
        },
      ],
      next: 'end-pass',
    });
    assert.deepEqual(decide(observed({ container: container(), pass: { readiness: { ready: false } } })), {
      actions: [],
      next: 'end-pass',
    });
  });
});

describe('volume-shipping decisions', () => {
  const shipped = assignment({ planName: 'shipped' });
  const primary = { ...shipped, role: 'primary', epoch: 4 } as const;

  it('v1: without a role nothing starts', () => {
    assert.deepEqual(decideShipped(shipped, observed({ container: container() }), t0), {
      actions: [],
      next: 'end-pass',
    });
    assert.deepEqual(decideShipped(shipped, observed({ container: stopped }), t0).actions, [
      { kind: 'write-status', status: { state: 'creating', message: 'waiting for the controller to choose a role' } },
    ]);
  });

  it('v2: a standby is stopped if it runs, forgotten, and reported stopped', () => {
    const standby = { ...shipped, role: 'replica' } as const;
    const message = 'standby: waiting for the controller to name the primary to copy';
    assert.deepEqual(decideShipped(standby, observed({ container: container() }), t0), {
      actions: [
        { kind: 'warn', message: 'demoted to standby: stopping the container' },
        { kind: 'stop', containerId: 'c1', timeoutSeconds: 10 },
        { kind: 'forget' },
        { kind: 'write-status', status: { state: 'stopped', message, containerId: 'c1' } },
      ],
      next: 'end-pass',
    });
    assert.deepEqual(decideShipped(standby, observed(), t0).actions, [
      { kind: 'forget' },
      { kind: 'write-status', status: { state: 'stopped', message } },
    ]);
  });

  it('v3: a primary that does not run starts only when the primary key names it', () => {
    assert.deepEqual(decideShipped(primary, observed(), t0), {
      actions: [{ kind: 'read-claim', purpose: 'start', epoch: 4 }],
      next: 'look-again',
    });
    const message = `not starting as primary: ${refusedClaim.reason}`;
    assert.deepEqual(
      decideShipped(primary, observed({ container: stopped, pass: { claims: { start: refusedClaim } } }), t0),
      {
        actions: [
          { kind: 'write-status', status: { state: 'failed', message, containerId: 'c1' } },
          { kind: 'retry-after', ms: 1000 },
        ],
        next: 'end-pass',
      },
    );
    assert.deepEqual(decideShipped(primary, observed({ pass: { claims: { start: refusedClaim } } }), t0).actions[0], {
      kind: 'write-status',
      status: { state: 'creating', message },
    });
    assert.deepEqual(decideShipped(primary, observed({ pass: { claims: { start: grantedClaim } } }), t0).actions, [
      { kind: 'look-up-prerequisites' },
    ]);
  });

  it('v4: a running primary is tracked as one, so self-fencing kills it', () => {
    assert.deepEqual(decideShipped(primary, observed({ container: container(), status: status() }), t0).actions, [
      { kind: 'track-primary', containerId: 'c1', epoch: 4 },
    ]);
    const known = observed({ container: container(), status: status(), applied: applied({ role: 'primary' }) });
    assert.deepEqual(decideShipped(primary, known, t0).actions, []);
    const ready = observed({ container: container(), pass: { readiness: { ready: true, port: 32005 } } });
    assert.deepEqual(decideShipped(primary, ready, t0).actions.at(-1), {
      kind: 'track-primary',
      containerId: 'c1',
      epoch: 4,
    });
  });
});

describe('standalone and volume-shipping decisions: rule u1 (upgrades)', () => {
  const old = container({ image: 'web:1' });
  const upgraded = assignment({ serviceName: 'web', planName: 'tiny', image: 'web:2' });

  it('the assignment names another image: graceful stop, container removed, volume kept', () => {
    const step = decideStandalone(upgraded, observed({ container: old, status: status() }), t0);
    assert.deepEqual(step.actions.slice(0, 3), [
      {
        kind: 'write-status',
        status: { state: 'creating', containerId: 'c1', message: 'upgrading: image web:1 → web:2' },
      },
      { kind: 'stop', containerId: 'c1', timeoutSeconds: 40 },
      { kind: 'remove-container', containerId: 'c1' },
    ]);
    assert.equal(step.next, 'look-again');
  });

  it('the image it runs: it keeps running and reports it', () => {
    const same = assignment({ serviceName: 'web', planName: 'tiny', image: 'web:1' });
    const step = decideStandalone(
      same,
      observed({ container: old, pass: { looks: 1, readiness: { ready: true, port: 32001 } } }),
      t0,
    );
    assert.deepEqual(step.actions, [
      {
        kind: 'write-status',
        status: { state: 'running', containerId: 'c1', image: 'web:1', host: address, port: 32001, message: 'ready' },
      },
    ]);
  });

  it('a shipped primary is replaced the same way', () => {
    const primary = assignment({ role: 'primary', epoch: 3, image: 'web:2' });
    const step = decideShipped(primary, observed({ container: old, applied: applied(), status: status() }), t0);
    assert.equal(step.actions[2]?.kind, 'remove-container');
  });
});

describe('standalone and volume-shipping decisions: rule l1 (CPU and memory changed in place)', () => {
  const small = container({ limits: { cpuMillis: 50, memoryMb: 32 } });
  const sized = container({ limits: { cpuMillis: 100, memoryMb: 64 } });
  const setLimits = { kind: 'set-limits', containerId: 'c1', limits: { cpuMillis: 100, memoryMb: 64 } };
  const runningWith = (limits: object, message: string) => ({
    kind: 'write-status',
    status: { state: 'running', containerId: 'c1', limits, host: address, port: 32001, message },
  });

  it('l1: limits other than the assignment asks are changed in place, standalone or shipped primary', () => {
    assert.deepEqual(decideStandalone(server, observed({ container: small, status: status() }), t0), {
      actions: [setLimits],
      next: 'look-again',
    });
    const shipped = assignment({ role: 'primary', epoch: 3 });
    const step = decideShipped(shipped, observed({ container: small, applied: applied(), status: status() }), t0);
    assert.deepEqual(step.actions, [setLimits]);
  });

  it('n4: running with its status reporting the limits: left alone', () => {
    const reported = status({ host: address, port: 32001, limits: { cpuMillis: 100, memoryMb: 64 } });
    const step = decideStandalone(server, observed({ container: sized, status: reported }), t0);
    assert.deepEqual(step, { actions: [], next: 'end-pass' });
  });

  it('n4b: running, its status not reporting the new limits: status running with them', () => {
    const step = decideStandalone(
      server,
      observed({
        container: sized,
        status: status({ host: address, port: 32001 }),
        pass: { looks: 1, tried: { limits: { ok: true } } },
      }),
      t0,
    );
    assert.deepEqual(step.actions, [runningWith({ cpuMillis: 100, memoryMb: 64 }, 'ready')]);
  });

  it('n4b: the change refused: its reason in the status, retry in 1 s, not tried again this pass', () => {
    const error = 'limits stay 50m CPU, 32 MB memory: the service uses 60 MB, more than 90% of the 64 MB asked';
    const step = decideStandalone(
      server,
      observed({
        container: small,
        status: status({ host: address, port: 32001 }),
        pass: { looks: 1, tried: { limits: { ok: false, error } } },
      }),
      t0,
    );
    assert.deepEqual(step.actions, [
      runningWith({ cpuMillis: 50, memoryMb: 32 }, error),
      { kind: 'retry-after', ms: 1000 },
    ]);
  });
});
