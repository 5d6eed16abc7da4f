import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AssignmentRecord } from '@service-foundry/core';
import type { ReplicaStep } from '../src/replica-actions.js';
import { decideReplicated } from '../src/replica-decisions.js';
import type { ReplicaObservation } from '../src/replica-observation.js';
import {
  address,
  applied,
  assignment,
  baseName,
  container,
  grantedClaim,
  type ObservationFields,
  observed,
  peer,
  refusedClaim,
  status,
  t0,
  upstream,
} from './decision-fixtures.js';

/** One test per row of the table in src/replica-decisions.ts; no Docker, no etcd. */

const decide = (a: AssignmentRecord, o: ReplicaObservation): ReplicaStep => decideReplicated(a, o, t0);
const replica = assignment({ role: 'replica', epoch: 5, upstream });
const primary = assignment({ role: 'primary', epoch: 9 });
const stopped = container({ running: false });
const refusal = `not starting as primary: ${refusedClaim.reason}`;

/** The status `running` a ready replica reports, with what is applied. */
function runningStatus(fields: Record<string, unknown>, message = 'ready') {
  return {
    kind: 'write-status',
    status: { generation: 0, state: 'running', containerId: 'c1', host: address, port: 32001, message, ...fields },
  };
}

describe('replica decisions: rule 1 (no role yet)', () => {
  it('leaves a running container alone', () => {
    assert.deepEqual(decide(assignment(), observed({ container: container(), applied: applied() })), {
      actions: [],
      next: 'end-pass',
    });
  });

  it('otherwise waits for the controller, naming a stopped container', () => {
    const message = 'waiting for the controller to choose a role';
    assert.deepEqual(decide(assignment(), observed()), {
      actions: [{ kind: 'write-status', status: { state: 'creating', message } }],
      next: 'end-pass',
    });
    assert.deepEqual(decide(assignment(), observed({ container: stopped, applied: applied() })).actions, [
      { kind: 'write-status', status: { state: 'creating', message, containerId: 'c1' } },
    ]);
  });
});

describe('replica decisions: a replica without a container (rules 2 and 3)', () => {
  it('rule 3: a replica without an upstream waits for it', () => {
    assert.deepEqual(decide(assignment({ role: 'replica' }), observed()), {
      actions: [
        {
          kind: 'write-status',
          status: { state: 'creating', message: 'waiting for the controller to name the upstream' },
        },
      ],
      next: 'end-pass',
    });
  });

  it('rule 2: a primary reads the primary key first, and a refusal creates nothing', () => {
    assert.deepEqual(decide(primary, observed()), {
      actions: [{ kind: 'read-claim', purpose: 'create', epoch: 9 }],
      next: 'look-again',
    });
    assert.deepEqual(decide(primary, observed({ pass: { claims: { create: refusedClaim } } })), {
      actions: [
        { kind: 'warn', message: refusal },
        { kind: 'write-status', status: { state: 'creating', message: refusal } },
        { kind: 'retry-after', ms: 1000 },
      ],
      next: 'end-pass',
    });
    // Said once in the log: the status already carries the same message.
    const again = observed({
      status: status({ state: 'creating', message: refusal }),
      pass: { claims: { create: refusedClaim } },
    });
    assert.equal(
      decide(primary, again).actions.some((action) => action.kind === 'warn'),
      false,
    );
  });

  it('c1: looks up image, secret and the volume of its generation', () => {
    assert.deepEqual(decide(assignment({ ...replica, generation: 2 }), observed()), {
      actions: [{ kind: 'look-up-prerequisites', generation: 2 }],
      next: 'look-again',
    });
    assert.deepEqual(decide(primary, observed({ pass: { claims: { create: grantedClaim } } })).actions, [
      { kind: 'look-up-prerequisites', generation: 0 },
    ]);
  });

  it('c2: a missing image fails; a missing or unreadable secret is waited for', () => {
    const missingImage = observed({ pass: { prerequisites: { kind: 'image-missing', image: 'sf/pg:1' } } });
    assert.deepEqual(decide(replica, missingImage), {
      actions: [
        {
          kind: 'write-status',
          status: { state: 'failed', message: 'image sf/pg:1 not found: run `sf images build`' },
        },
      ],
      next: 'end-pass',
    });
    assert.deepEqual(decide(replica, observed({ pass: { prerequisites: { kind: 'secret-missing' } } })).actions, [
      { kind: 'write-status', status: { state: 'creating', message: 'waiting for the instance secret' } },
      { kind: 'retry-after', ms: 1000 },
    ]);
    const invalid = decide(replica, observed({ pass: { prerequisites: { kind: 'secret-invalid' } } }));
    assert.match(JSON.stringify(invalid.actions[0]), /malformed or sealed with another key/);
    assert.deepEqual(invalid.actions[1], { kind: 'retry-after', ms: 1000 });
  });

  it('c3: creates the volume and a container with its role, generation, epoch and upstream', () => {
    const ready = { prerequisites: { kind: 'ready', volume: `${baseName}-g1` } } as const;
    assert.deepEqual(decide(assignment({ ...replica, generation: 1 }), observed({ pass: ready })), {
      actions: [
        {
          kind: 'write-status',
          status: { state: 'creating', message: `creating volume ${baseName}-g1 and a container as replica` },
        },
        { kind: 'ensure-volume', name: `${baseName}-g1`, generation: 1 },
        {
          kind: 'create-container',
          volume: `${baseName}-g1`,
          replicated: { role: 'replica', generation: 1, epoch: 5, upstream },
        },
      ],
      next: 'look-again',
    });
    const asPrimary = decide(
      assignment({ ...primary, upstream }),
      observed({ pass: { ...ready, claims: { create: grantedClaim } } }),
    );
    assert.deepEqual(asPrimary.actions[2], {
      kind: 'create-container',
      volume: `${baseName}-g1`,
      replicated: { role: 'primary', generation: 0, epoch: 9 },
    });
  });
});

describe('replica decisions: rule 4e (rebuilds)', () => {
  it('a generation above the container’s: new volume, graceful stop, old volume kept', () => {
    const step = decide(
      assignment({ ...replica, generation: 1 }),
      observed({ container: container(), applied: applied() }),
    );
    assert.deepEqual(step, {
      actions: [
        {
          kind: 'write-status',
          status: { state: 'creating', containerId: 'c1', message: 'rebuilding: generation 0 → 1' },
        },
        { kind: 'ensure-volume', name: `${baseName}-g1`, generation: 1 },
        { kind: 'stop', containerId: 'c1', timeoutSeconds: 10 },
        { kind: 'remove-container', containerId: 'c1' },
        { kind: 'forget' },
        {
          kind: 'event',
          event: 'replica-volume-superseded',
          message:
            'replica db/0 on node n1 rebuilt as a replica (generation 0 → 1); ' +
            `volume ${baseName} is kept, superseded by ${baseName}-g1`,
        },
      ],
      next: 'look-again',
    });
  });

  it('a possible primary assigned replica: killed, rebuilt on a volume named by the epoch', () => {
    const step = decide(
      assignment({ ...replica, epoch: 7 }),
      observed({ container: container(), applied: applied({ role: 'primary', mayBePrimary: true }) }),
    );
    assert.match(JSON.stringify(step.actions[0]), /rebuilding: demoted/);
    assert.deepEqual(step.actions.slice(1, 3), [
      { kind: 'ensure-volume', name: `${baseName}-g0-e7`, generation: 0, rebuildEpoch: 7 },
      { kind: 'kill', containerId: 'c1' },
    ]);
  });

  it('is decided on the first look of a pass only', () => {
    const later = observed({
      container: container(),
      applied: applied({ mayBePrimary: true }),
      status: status(),
      pass: { looks: 3 },
    });
    assert.equal(
      decide(replica, later).actions.some((action) => action.kind === 'kill'),
      false,
    );
  });

  it('refuses when the fresh volume would be the one in use', () => {
    const inUse = container({ volume: `${baseName}-g0-e7` });
    const step = decide(
      assignment({ ...replica, epoch: 7 }),
      observed({ container: inUse, applied: applied({ mayBePrimary: true }) }),
    );
    assert.equal(step.next, 'end-pass');
    assert.equal(step.actions.length, 1);
    assert.match(JSON.stringify(step.actions[0]), /"state":"failed".*cannot rebuild \(demoted.*the one in use/);
  });
});

describe('replica decisions: rule u1 (upgrades)', () => {
  const old = container({ image: 'sf-postgres:r1' });
  const replace = (message: string) => ({
    actions: [
      { kind: 'write-status', status: { state: 'creating', containerId: 'c1', message } },
      { kind: 'stop', containerId: 'c1', timeoutSeconds: 40 },
      { kind: 'remove-container', containerId: 'c1' },
      { kind: 'forget' },
      {
        kind: 'event',
        event: 'replica-image-changed',
        message: 'replica db/0 on node n1 restarts on image sf-postgres:r2 (was sf-postgres:r1); its volume is kept',
      },
    ],
    next: 'look-again',
  });

  it('a replica whose assignment names another image: graceful stop, container removed, volume kept', () => {
    const step = decide(
      assignment({ ...replica, image: 'sf-postgres:r2' }),
      observed({ container: old, applied: applied(), status: status() }),
    );
    assert.deepEqual(step, replace('upgrading: image sf-postgres:r1 → sf-postgres:r2'));
  });

  it('a primary too (a one-replica instance): stopped gracefully, never killed', () => {
    const step = decide(
      assignment({ ...primary, image: 'sf-postgres:r2' }),
      observed({ container: old, applied: applied({ role: 'primary', epoch: 9, mayBePrimary: true }) }),
    );
    assert.deepEqual(step, replace('upgrading: image sf-postgres:r1 → sf-postgres:r2'));
  });

  it('no image named, or the one it runs: nothing is replaced', () => {
    for (const a of [replica, assignment({ ...replica, image: 'sf-postgres:r1' })]) {
      const step = decide(a, observed({ container: old, applied: applied(), status: status() }));
      assert.equal(
        step.actions.some((action) => action.kind === 'remove-container'),
        false,
      );
    }
  });

  it('a rebuild comes first: the rebuilt container is made from the new image anyway', () => {
    const step = decide(
      assignment({ ...replica, generation: 1, image: 'sf-postgres:r2' }),
      observed({ container: old, applied: applied() }),
    );
    assert.match(JSON.stringify(step.actions[0]), /rebuilding: generation 0 → 1/);
  });

  it('is decided on the first look of a pass only', () => {
    const step = decide(
      assignment({ ...replica, image: 'sf-postgres:r2' }),
      observed({ container: old, applied: applied(), status: status(), pass: { looks: 2 } }),
    );
    assert.equal(
      step.actions.some((action) => action.kind === 'remove-container'),
      false,
    );
  });

  it('a running replica reports the image its container was made from', () => {
    const step = decide(
      assignment({ ...replica, image: 'sf-postgres:r1' }),
      observed({
        container: old,
        applied: applied(),
        pass: { looks: 1, readiness: { ready: true, port: 32001 } },
      }),
    );
    assert.deepEqual(step.actions.at(-1), runningStatus({ role: 'replica', epoch: 5, peer, image: 'sf-postgres:r1' }));
  });
});

describe('replica decisions: a stopped container', () => {
  it('r1: reports the exit when its status says it ran, with the self-fence reason', () => {
    const fenced = applied({ fencedReason: 'self-fenced: killed 1510 ms after the last confirmed lease renewal' });
    assert.deepEqual(decide(replica, observed({ container: stopped, applied: fenced, status: status() })), {
      actions: [{ kind: 'report-exit', containerId: 'c1', cause: fenced.fencedReason }],
      next: 'end-pass',
    });
    const starting = observed({ container: stopped, applied: applied(), status: status({ state: 'starting' }) });
    assert.deepEqual(decide(replica, starting).actions, [{ kind: 'report-exit', containerId: 'c1' }]);
  });

  it('r2: a failure is left visible for the back-off, then the container starts again', () => {
    const recent = observed({ container: stopped, applied: applied(), status: status({ state: 'failed' }, 1000) });
    assert.deepEqual(decide(replica, recent), { actions: [{ kind: 'retry-after', ms: 1500 }], next: 'end-pass' });
    const old = observed({ container: stopped, applied: applied(), status: status({ state: 'failed' }, 3000) });
    assert.deepEqual(decide(replica, old), { actions: [{ kind: 'start', containerId: 'c1' }], next: 'look-again' });
  });

  it('rule 2: a primary starts only after the primary key, read right before, names it', () => {
    const base = { container: stopped, applied: applied(), status: status({ state: 'creating', message: 'x' }) };
    assert.deepEqual(decide(primary, observed(base)).actions, [{ kind: 'read-claim', purpose: 'start', epoch: 9 }]);
    assert.deepEqual(decide(primary, observed({ ...base, pass: { claims: { start: refusedClaim } } })), {
      actions: [
        { kind: 'warn', message: refusal },
        { kind: 'write-status', status: { state: 'failed', message: refusal, containerId: 'c1' } },
        { kind: 'retry-after', ms: 1000 },
      ],
      next: 'end-pass',
    });
    assert.deepEqual(decide(primary, observed({ ...base, pass: { claims: { start: grantedClaim } } })), {
      actions: [
        { kind: 'note', containerId: 'c1', changes: { mayBePrimary: true } },
        { kind: 'start', containerId: 'c1' },
      ],
      next: 'look-again',
    });
  });

  it('r3: a replica starts again', () => {
    const step = decide(replica, observed({ container: stopped, applied: applied() }));
    assert.deepEqual(step, { actions: [{ kind: 'start', containerId: 'c1' }], next: 'look-again' });
  });
});

describe('replica decisions: after this pass started the container', () => {
  it('s1: a possible primary started while the node fenced itself is killed', () => {
    const step = decide(
      primary,
      observed({
        container: container(),
        applied: applied({ mayBePrimary: true }),
        selfFenced: true,
        pass: { started: 'c1' },
      }),
    );
    const message = 'not starting as primary: self-fenced while it was starting';
    assert.deepEqual(step, {
      actions: [
        { kind: 'kill', containerId: 'c1' },
        { kind: 'warn', message },
        { kind: 'write-status', status: { state: 'failed', message, containerId: 'c1' } },
        { kind: 'retry-after', ms: 1000 },
      ],
      next: 'end-pass',
    });
  });

  it('s2: one that stopped already is reported, and the old fence reason forgotten', () => {
    const step = decide(
      replica,
      observed({ container: stopped, applied: applied({ fencedReason: 'self-fenced' }), pass: { started: 'c1' } }),
    );
    assert.deepEqual(step, {
      actions: [
        { kind: 'note', containerId: 'c1', changes: { fencedReason: undefined } },
        { kind: 'report-exit', containerId: 'c1' },
      ],
      next: 'end-pass',
    });
  });

  it('s3: one that runs is waited for', () => {
    const step = decide(replica, observed({ container: container(), applied: applied(), pass: { started: 'c1' } }));
    assert.deepEqual(step, { actions: [{ kind: 'await-ready', containerId: 'c1' }], next: 'look-again' });
  });
});

describe('replica decisions: a running container', () => {
  it('g1: its own running status and a published port go straight to rule 4', () => {
    const step = decide(replica, observed({ container: container(), applied: applied(), status: status() }));
    assert.deepEqual(step, {
      actions: [runningStatus({ role: 'replica', epoch: 5, peer })],
      next: 'end-pass',
    });
  });

  it('g2: after its own failure it backs off', () => {
    const failed = status({ state: 'failed' }, 500);
    const step = decide(replica, observed({ container: container(), applied: applied(), status: failed }));
    assert.deepEqual(step, { actions: [{ kind: 'retry-after', ms: 2000 }], next: 'end-pass' });
  });

  it('g3: adopted, or worth another readiness try: awaits readiness', () => {
    for (const current of [undefined, status({ containerId: 'other' }), status({ state: 'failed' }, 10_000)]) {
      const step = decide(
        replica,
        observed({ container: container(), applied: applied(), ...(current ? { status: current } : {}) }),
      );
      assert.deepEqual(step, { actions: [{ kind: 'await-ready', containerId: 'c1' }], next: 'look-again' });
    }
  });

  describe('4g: a replica not known ready whose upstream moved', () => {
    const moved = { host: '172.17.0.10', port: 5432 };
    const movedReplica = assignment({ role: 'replica', epoch: 6, upstream: moved });
    const follow = { kind: 'follow', containerId: 'c1', upstream: moved, epoch: 6 } as const;
    const awaitReady = { kind: 'await-ready', containerId: 'c1' } as const;
    const notReady = [undefined, status({ state: 'starting' }), status({ state: 'failed' }, 500)];
    /** Made (environment and label `sf.upstream`) for the upstream it followed before the move. */
    const madeForOld = container({ madeFor: upstream });
    const followFailed = { tried: { follow: { ok: false, error: 'no server yet' } } } as const;

    it('is told to follow before readiness is awaited, even within the back-off', () => {
      for (const current of notReady) {
        const step = decide(
          movedReplica,
          observed({ container: madeForOld, applied: applied(), ...(current ? { status: current } : {}) }),
        );
        assert.deepEqual(step, { actions: [follow], next: 'look-again' });
      }
    });

    it('an unknown upstream (adopted, or made on a volume that held data) is followed too', () => {
      const unknown = applied({ upstream: undefined });
      assert.deepEqual(decide(movedReplica, observed({ container: container(), applied: unknown })).actions, [follow]);
    });

    it('an unknown role is asked first; a server that may be primary is never told to follow', () => {
      const adopted = applied({ role: undefined });
      assert.deepEqual(decide(movedReplica, observed({ container: madeForOld, applied: adopted })).actions, [
        { kind: 'probe-role', containerId: 'c1' },
      ]);
      const unanswered = observed({
        container: madeForOld,
        applied: adopted,
        pass: { tried: { role: { ok: false, error: 'no server' }, follow: { ok: false, error: 'x' } } },
      });
      assert.deepEqual(decide(movedReplica, unanswered).actions, [awaitReady]);
      const possiblePrimary = observed({
        container: madeForOld,
        applied: applied({ role: 'primary', mayBePrimary: true }),
        pass: { looks: 1 },
      });
      assert.deepEqual(decide(movedReplica, possiblePrimary).actions, [awaitReady]);
    });

    it('a follow that worked, or failed on a container made for this upstream or an unknown one: readiness next', () => {
      const followed = observed({
        container: madeForOld,
        applied: applied({ upstream: moved }),
        pass: { tried: { follow: { ok: true } } },
      });
      assert.deepEqual(decide(movedReplica, followed).actions, [awaitReady]);
      for (const made of [container({ madeFor: moved }), container()]) {
        const failed = observed({ container: made, applied: applied(), pass: followFailed });
        assert.deepEqual(decide(movedReplica, failed).actions, [awaitReady]);
      }
    });

    it('made for another upstream and unable to follow: killed and made again on the same volume', () => {
      const failed = observed({
        container: madeForOld,
        applied: applied({ upstream: undefined }),
        status: status({ state: 'starting' }),
        pass: followFailed,
      });
      assert.deepEqual(decide(movedReplica, failed), {
        actions: [
          {
            kind: 'write-status',
            status: {
              state: 'creating',
              containerId: 'c1',
              message: 're-creating: upstream 172.17.0.9:5432 → 172.17.0.10:5432',
            },
          },
          { kind: 'kill', containerId: 'c1' },
          { kind: 'remove-container', containerId: 'c1' },
          { kind: 'forget' },
          {
            kind: 'event',
            event: 'replica-recreated',
            message:
              'replica db/0 on node n1 is made again for upstream 172.17.0.10:5432 instead of 172.17.0.9:5432: ' +
              'it was not ready and could not follow (no server yet); its volume is kept',
          },
        ],
        next: 'look-again',
      });
    });

    it('leaves alone: the same upstream, a primary, no upstream named; a ready one goes to rule 4c', () => {
      const cases: Array<[AssignmentRecord, ObservationFields]> = [
        [replica, { container: madeForOld, applied: applied() }],
        [primary, { container: madeForOld, applied: applied() }],
        [assignment({ role: 'replica', epoch: 6 }), { container: madeForOld, applied: applied() }],
      ];
      for (const [a, o] of cases) assert.deepEqual(decide(a, observed(o)).actions, [awaitReady]);
      const ready = decide(movedReplica, observed({ container: madeForOld, applied: applied(), status: status() }));
      assert.deepEqual(ready.actions, [follow]);
    });
  });

  describe('4h: a stopped replica made for another upstream', () => {
    const moved = assignment({ role: 'replica', epoch: 6, upstream: { host: '172.17.0.10', port: 5432 } });
    const exited = status({ state: 'failed', containerId: 'c1' }, 500);

    it('is made again rather than started, without waiting out the back-off', () => {
      const step = decide(
        moved,
        observed({ container: container({ running: false, madeFor: upstream }), applied: applied(), status: exited }),
      );
      assert.deepEqual(step.actions.slice(0, 3), [
        {
          kind: 'write-status',
          status: {
            state: 'creating',
            containerId: 'c1',
            message: 're-creating: upstream 172.17.0.9:5432 → 172.17.0.10:5432',
          },
        },
        { kind: 'remove-container', containerId: 'c1' },
        { kind: 'forget' },
      ]);
      assert.match(JSON.stringify(step.actions[3]), /replica-recreated.*it stopped; its volume is kept/);
    });

    it('is started as it is when made for this upstream, for an unknown one, or when it may be primary', () => {
      for (const [made, view] of [
        [container({ running: false, madeFor: { host: '172.17.0.10', port: 5432 } }), applied()],
        [container({ running: false }), applied()],
        [container({ running: false, madeFor: upstream }), applied({ mayBePrimary: true })],
      ] as const) {
        // Past the first look, where rule 4e would rebuild a possible primary.
        const step = decide(moved, observed({ container: made, applied: view, status: exited, pass: { looks: 1 } }));
        assert.equal(
          step.actions.some((a) => a.kind === 'remove-container'),
          false,
        );
      }
    });
  });

  it('g4: a failed readiness wait ends the pass (its status says why)', () => {
    const step = decide(
      replica,
      observed({ container: container(), applied: applied(), pass: { readiness: { ready: false } } }),
    );
    assert.deepEqual(step, { actions: [], next: 'end-pass' });
  });
});

describe('replica decisions: rules 4 and 5 on a ready container', () => {
  const ready = { readiness: { ready: true, port: 32001 } } as const;
  const on = (a: AssignmentRecord, o: ObservationFields) =>
    decide(a, observed({ container: container(), applied: applied(), ...o, pass: { ...ready, ...o.pass } }));

  it('5: remembers where other replicas reach it and reports it', () => {
    const step = on(replica, { applied: applied({ peer: undefined }) });
    assert.deepEqual(step, {
      actions: [
        { kind: 'note', containerId: 'c1', changes: { peer } },
        runningStatus({ role: 'replica', epoch: 5, peer }),
      ],
      next: 'end-pass',
    });
  });

  it('4: an unknown role is asked for; when that fails the status says so', () => {
    assert.deepEqual(on(replica, { applied: applied({ role: undefined }) }).actions, [
      { kind: 'probe-role', containerId: 'c1' },
    ]);
    const step = on(replica, {
      applied: applied({ role: undefined }),
      pass: { tried: { role: { ok: false, error: 'role failed: exec refused' } } },
    });
    assert.deepEqual(step.actions, [
      runningStatus({ epoch: 5, peer }, 'role unknown: role failed: exec refused'),
      { kind: 'retry-after', ms: 1000 },
    ]);
  });

  it('4a: a replica assigned primary is promoted only once the primary key names it', () => {
    assert.deepEqual(on(primary, {}).actions, [{ kind: 'read-claim', purpose: 'promote', epoch: 9 }]);
    const refused = on(primary, { pass: { claims: { promote: refusedClaim } } });
    assert.deepEqual(refused.actions, [
      runningStatus({ role: 'replica', epoch: 5, peer }, `not promoted: ${refusedClaim.reason}`),
      { kind: 'retry-after', ms: 1000 },
    ]);
    assert.deepEqual(on(primary, { pass: { claims: { promote: grantedClaim } } }), {
      actions: [{ kind: 'promote', containerId: 'c1', epoch: 9 }],
      next: 'look-again',
    });
    const failed = on(primary, {
      pass: { claims: { promote: grantedClaim }, tried: { promote: { ok: false, error: 'promote failed: x' } } },
    });
    assert.deepEqual(failed.actions, [
      runningStatus({ role: 'replica', epoch: 5, peer }, 'promote failed: x'),
      { kind: 'retry-after', ms: 1000 },
    ]);
    const promoted = on(primary, {
      applied: applied({ role: 'primary', epoch: 9, mayBePrimary: true }),
      pass: { claims: { promote: grantedClaim }, tried: { promote: { ok: true } } },
    });
    assert.deepEqual(promoted.actions, [runningStatus({ role: 'primary', epoch: 9, peer })]);
  });

  it('4a: a promotion while the node fenced itself is reported', () => {
    const step = on(primary, {
      applied: applied({ role: 'primary', epoch: 9, mayBePrimary: true }),
      selfFenced: true,
      pass: { claims: { promote: grantedClaim }, tried: { promote: { ok: true } } },
    });
    assert.deepEqual(step.actions, [
      runningStatus({ role: 'primary', epoch: 9, peer }, 'self-fenced during the promotion'),
      { kind: 'retry-after', ms: 1000 },
    ]);
  });

  it('4b: a primary moved to a new epoch checks the key; a refusal is reported, nothing stopped', () => {
    const atOld = applied({ role: 'primary', epoch: 3, mayBePrimary: true, upstream: undefined });
    assert.deepEqual(on(primary, { applied: atOld }).actions, [{ kind: 'read-claim', purpose: 'promote', epoch: 9 }]);
    assert.deepEqual(on(primary, { applied: atOld, pass: { claims: { promote: refusedClaim } } }).actions, [
      runningStatus({ role: 'primary', epoch: 3, peer }, refusedClaim.reason),
      { kind: 'retry-after', ms: 1000 },
    ]);
    assert.deepEqual(on(primary, { applied: atOld, pass: { claims: { promote: grantedClaim } } }), {
      actions: [
        { kind: 'note', containerId: 'c1', changes: { epoch: 9 } },
        runningStatus({ role: 'primary', epoch: 9, peer }),
      ],
      next: 'end-pass',
    });
  });

  it('4e: a replica that turned out to be primary in this pass is reported; the next pass rebuilds it', () => {
    const step = on(replica, { applied: applied({ mayBePrimary: true }), pass: { looks: 2 } });
    assert.deepEqual(step.actions, [
      runningStatus({ role: 'replica', epoch: 5, peer }, 'assigned as replica but it is primary: rebuilding it'),
      { kind: 'retry-after', ms: 1000 },
    ]);
  });

  it('3: a replica whose upstream was never named says it waits', () => {
    const step = on(assignment({ role: 'replica', epoch: 5 }), { applied: applied({ upstream: undefined }) });
    assert.deepEqual(step.actions, [
      runningStatus({ role: 'replica', epoch: 5, peer }, 'waiting for the controller to name the upstream'),
      { kind: 'retry-after', ms: 1000 },
    ]);
  });

  it('4c: a new upstream is followed; a failed follow is reported', () => {
    const moved = assignment({ role: 'replica', epoch: 6, upstream: { host: '172.17.0.10', port: 5432 } });
    assert.deepEqual(on(moved, {}), {
      actions: [{ kind: 'follow', containerId: 'c1', upstream: { host: '172.17.0.10', port: 5432 }, epoch: 6 }],
      next: 'look-again',
    });
    const failed = on(moved, { pass: { tried: { follow: { ok: false, error: 'follow failed: y' } } } });
    assert.deepEqual(failed.actions, [
      runningStatus({ role: 'replica', epoch: 5, peer }, 'follow failed: y'),
      { kind: 'retry-after', ms: 1000 },
    ]);
  });

  it('4c: the same upstream at a new epoch only moves the epoch', () => {
    assert.deepEqual(on(assignment({ ...replica, epoch: 8 }), {}).actions, [
      { kind: 'note', containerId: 'c1', changes: { epoch: 8 } },
      runningStatus({ role: 'replica', epoch: 8, peer }),
    ]);
  });

  it('4d: io that differs from the applied one is configured; a failure is reported', () => {
    const io = { durability: 'remote-fsync', localIo: 'fsync' } as const;
    assert.deepEqual(on(assignment({ ...replica, io }), {}), {
      actions: [{ kind: 'configure', containerId: 'c1', io }],
      next: 'look-again',
    });
    assert.deepEqual(on(assignment({ ...replica, io }), { applied: applied({ io }) }).actions, [
      runningStatus({ role: 'replica', epoch: 5, peer, io }),
    ]);
    const failed = on(assignment({ ...replica, io }), {
      pass: { tried: { configure: { ok: false, error: 'configure failed: z' } } },
    });
    assert.deepEqual(failed.actions, [
      runningStatus({ role: 'replica', epoch: 5, peer }, 'configure failed: z'),
      { kind: 'retry-after', ms: 1000 },
    ]);
  });

  it('4f: every failed step joins the message, in the order of the steps, and is retried', () => {
    const io = { durability: 'async', localIo: 'batched' } as const;
    const step = on(assignment({ ...primary, io }), {
      pass: {
        claims: { promote: grantedClaim },
        tried: { promote: { ok: false, error: 'promote failed' }, configure: { ok: false, error: 'configure failed' } },
      },
    });
    assert.deepEqual(step.actions, [
      runningStatus({ role: 'replica', epoch: 5, peer }, 'promote failed; configure failed'),
      { kind: 'retry-after', ms: 1000 },
    ]);
  });

  it('5: everything applied: status running with role, epoch, peer, io, generation and position', () => {
    const io = { durability: 'received', localIo: 'fsync' } as const;
    const fields = { io, position: '12345678901234567890', positionAt: new Date(t0).toISOString(), generation: 2 };
    const step = on(assignment({ ...replica, io, generation: 2 }), { applied: applied(fields) });
    assert.deepEqual(step, {
      actions: [runningStatus({ role: 'replica', epoch: 5, peer, ...fields })],
      next: 'end-pass',
    });
  });
});

describe('replica decisions: rule l1 (CPU and memory changed in place)', () => {
  // The fixture assignment asks 100m CPU and 64 MB; this container runs with the old size.
  const small = container({ limits: { cpuMillis: 50, memoryMb: 32 } });
  const sized = container({ limits: { cpuMillis: 100, memoryMb: 64 } });
  const ready = { readiness: { ready: true, port: 32001 } as const };

  it('limits other than the assignment asks: changed in place, nothing stopped, then look again', () => {
    const step = decide(replica, observed({ container: small, applied: applied(), status: status() }));
    assert.deepEqual(step, {
      actions: [{ kind: 'set-limits', containerId: 'c1', limits: { cpuMillis: 100, memoryMb: 64 } }],
      next: 'look-again',
    });
  });

  it('a primary the same way (no switchover, no restart)', () => {
    const step = decide(
      primary,
      observed({ container: small, applied: applied({ role: 'primary', epoch: 9, mayBePrimary: true }) }),
    );
    assert.deepEqual(step.actions, [
      { kind: 'set-limits', containerId: 'c1', limits: { cpuMillis: 100, memoryMb: 64 } },
    ]);
  });

  it('changed: the running status reports the limits the container runs with', () => {
    const step = decide(
      replica,
      observed({ container: sized, applied: applied(), pass: { looks: 3, ...ready, tried: { limits: { ok: true } } } }),
    );
    assert.deepEqual(step.actions, [
      runningStatus({ role: 'replica', epoch: 5, peer, limits: { cpuMillis: 100, memoryMb: 64 } }),
    ]);
  });

  it('refused or failed: tried once a pass, its reason in the running status, retry in 1 s', () => {
    const error = 'limits stay 50m CPU, 32 MB memory: the service uses 60 MB, more than 90% of the 64 MB asked';
    const step = decide(
      replica,
      observed({
        container: small,
        applied: applied(),
        pass: { looks: 3, ...ready, tried: { limits: { ok: false, error } } },
      }),
    );
    assert.deepEqual(step.actions, [
      runningStatus({ role: 'replica', epoch: 5, peer, limits: { cpuMillis: 50, memoryMb: 32 } }, error),
      { kind: 'retry-after', ms: 1000 },
    ]);
  });

  it('an upgrade comes first: the new container is created with the assignment’s limits anyway', () => {
    const step = decide(
      assignment({ ...replica, image: 'sf-postgres:r2' }),
      observed({ container: { ...small, image: 'sf-postgres:r1' }, applied: applied(), status: status() }),
    );
    assert.equal(step.actions[1]?.kind, 'stop');
  });
});
