import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { NodeView } from '@service-foundry/api';
import type {
  BackupRecord,
  FailoverPolicy,
  FenceCheckRecord,
  InstanceRecord,
  IoPolicy,
  PlacementRecord,
  ReplicaStatus,
} from '@service-foundry/core';
import { type ExplainInput, explainInstance } from '../src/explain-analysis.js';
import { measuredWriteGapSeconds } from '../src/explain-node-loss.js';

const now = Date.parse('2026-12-02T03:00:00Z');
const ago = (seconds: number) => new Date(now - seconds * 1000).toISOString();
const size = { cpuMillis: 500, memoryMb: 512, diskMb: 1024 };
const capacity = { cpuMillis: 4000, memoryMb: 8192, diskMb: 51200 };

function node(
  name: string,
  zone: string | undefined,
  held: Array<[string, number]>,
  fields: Partial<NodeView> = {},
): NodeView {
  const replicas = held.map(([instanceId, ordinal]) => ({ instanceId, ordinal, resources: size, state: 'running' }));
  return {
    name,
    alive: true,
    address: '10.0.0.1',
    labels: zone ? { zone } : {},
    capacity,
    allocated: {
      cpuMillis: size.cpuMillis * replicas.length,
      memoryMb: size.memoryMb * replicas.length,
      diskMb: size.diskMb * replicas.length,
    },
    replicas,
    control: null,
    fence: null,
    ...fields,
  };
}

function instance(replicas: number, io: IoPolicy, failover: FailoverPolicy, planName = 'ha-small'): InstanceRecord {
  return {
    id: 'pg-1',
    name: 'orders',
    serviceId: 'svc',
    planId: 'plan',
    serviceName: 'postgres',
    planName,
    parameters: {},
    replicas,
    resources: size,
    routerPort: 30001,
    context: {},
    createdAt: ago(3600),
    phase: 'ready',
    message: '',
    operation: { id: 'op', type: 'provision', state: 'succeeded', description: '', startedAt: ago(3600) },
    io,
    failover,
  };
}

const placement = (ordinal: number, on: string): PlacementRecord => ({
  instanceId: 'pg-1',
  ordinal,
  node: on,
  placedAt: ago(3500),
  scheduler: 'scheduler-1',
});
const status = (ordinal: number, on: string, role: 'primary' | 'replica', position: number): ReplicaStatus => ({
  instanceId: 'pg-1',
  ordinal,
  node: on,
  state: 'running',
  message: 'ready',
  updatedAt: ago(1),
  role,
  epoch: 7,
  position: String(position),
  positionAt: ago(1),
});
const check = (on: string, ok: boolean, checkedSecondsAgo = 30): FenceCheckRecord => ({
  node: on,
  checkedAt: ago(checkedSecondsAgo),
  devices: [
    {
      level: 1,
      device: 'ipmi',
      agent: 'fence_ipmilan',
      ok,
      power: ok ? 'on' : 'unknown',
      reason: ok ? '' : 'timed out',
      durationMs: 40,
    },
  ],
});
const backup = (completedSecondsAgo: number): BackupRecord => ({
  id: 'b-1',
  instanceId: 'pg-1',
  instanceName: 'orders',
  serviceName: 'postgres',
  planName: 'ha-small',
  state: 'completed',
  message: '',
  requestedBy: 'ops',
  requestedAt: ago(completedSecondsAgo + 10),
  completedAt: ago(completedSecondsAgo),
  node: 'n1',
});

const sync: IoPolicy = { durability: 'remote-fsync', localIo: 'fsync' };
const asyncIo: IoPolicy = { durability: 'async', localIo: 'fsync' };
const required: FailoverPolicy = { fencing: 'required', fencingTimeoutSeconds: 60, maxLagBytes: 1000 };

/** Three replicas on n1..n3 (zones a, b, c), primary 0 on n1, n4 empty; fence devices checked OK everywhere. */
function threeReplicas(overrides: Partial<ExplainInput> = {}): ExplainInput {
  const nodes = ['n1', 'n2', 'n3'].map((n, i) => node(n, 'abc'[i], [['pg-1', i]]));
  nodes.push(node('n4', 'd', []));
  return {
    now,
    instance: instance(3, sync, required),
    replicated: true,
    acknowledgedOnStandby: ['received', 'remote-fsync'],
    shipping: null,
    requiredNodeLabels: {},
    primary: { ordinal: 0, node: 'n1', epoch: 7 },
    placements: [placement(0, 'n1'), placement(1, 'n2'), placement(2, 'n3')],
    statuses: [status(0, 'n1', 'primary', 5000), status(1, 'n2', 'replica', 4200), status(2, 'n3', 'replica', 4900)],
    nodes,
    fenceDevices: new Map(['n1', 'n2', 'n3', 'n4'].map((n) => [n, { levels: 1, devices: 1 }])),
    fenceChecks: new Map(['n1', 'n2', 'n3', 'n4'].map((n) => [n, check(n, true)])),
    backups: [backup(3600)],
    ...overrides,
  };
}

const loss = (input: ExplainInput, name: string) => {
  const found = explainInstance(input).ifNodeDies.find((n) => n.node === name);
  assert.ok(found, `an answer for ${name}`);
  return found;
};

describe('sf explain: the analysis, as a model', () => {
  it('remote-fsync, primary node lost: the most advanced standby is promoted, nothing acknowledged is lost', () => {
    const n1 = loss(threeReplicas(), 'n1');
    assert.equal(n1.outcome, 'failover');
    assert.deepEqual(n1.promoted, { ordinal: 2, node: 'n3' });
    assert.equal(n1.dataAtRiskBytes, 0);
    assert.deepEqual(n1.expectedWriteGapSeconds, measuredWriteGapSeconds);
    assert.equal(n1.fencing.wouldSucceed, 'yes');
    assert.equal(n1.fencing.lastCheck?.ageSeconds, 30);
    assert.deepEqual(n1.blockers, []);
    assert.match(n1.sentences.join(' '), /Replica 2 on n3 would be promoted \(position 4900\)/);
    assert.match(n1.sentences.join(' '), /No acknowledged write is lost/);
  });

  it('a standby node lost: the primary keeps serving; a node without replicas changes nothing', () => {
    const input = threeReplicas();
    assert.equal(loss(input, 'n2').outcome, 'standby-lost');
    assert.deepEqual(loss(input, 'n2').blockers, []);
    assert.equal(loss(input, 'n4').outcome, 'none');
    assert.deepEqual(explainInstance(input).risks, []);
  });

  it('remote-fsync with one standby: losing it stops writes (said as a blocker)', () => {
    const input = threeReplicas({
      instance: instance(2, sync, required),
      placements: [placement(0, 'n1'), placement(1, 'n2')],
      statuses: [status(0, 'n1', 'primary', 5000), status(1, 'n2', 'replica', 5000)],
    });
    const n2 = loss(input, 'n2');
    assert.equal(n2.outcome, 'standby-lost');
    assert.match(n2.blockers[0] ?? '', /writes wait \(or are refused\) until a standby is back/);
  });

  it('async: the data at risk is the best standby’s lag; over max_lag_bytes blocks the failover', () => {
    const within = loss(threeReplicas({ instance: instance(3, asyncIo, required) }), 'n1');
    assert.equal(within.outcome, 'failover');
    assert.equal(within.dataAtRiskBytes, 100);
    const far = threeReplicas({
      instance: instance(3, asyncIo, required),
      statuses: [status(0, 'n1', 'primary', 9000), status(1, 'n2', 'replica', 4200), status(2, 'n3', 'replica', 4900)],
    });
    const blocked = loss(far, 'n1');
    assert.equal(blocked.outcome, 'blocked');
    assert.equal(blocked.dataAtRiskBytes, 4100);
    assert.match(blocked.blockers.join(), /lags 4100 bytes, over max_lag_bytes 1000/);
    const risks = explainInstance(far).risks.join('\n');
    assert.match(risks, /replica 1 lags 4800 bytes/);
    assert.match(risks, /replica 2 lags 4100 bytes/);
  });

  it('fencing required: no devices, or a device failing its check, blocks the failover and is a risk', () => {
    const none = threeReplicas({ fenceDevices: new Map(), fenceChecks: new Map() });
    const n1 = loss(none, 'n1');
    assert.equal(n1.outcome, 'blocked');
    assert.equal(n1.fencing.wouldSucceed, 'no');
    assert.match(
      explainInstance(none).risks.join('\n'),
      /node n1 has no fence devices while the instance requires fencing/,
    );

    const failing = threeReplicas({ fenceChecks: new Map([['n1', check('n1', false, 90)]]) });
    const f1 = loss(failing, 'n1');
    assert.equal(f1.outcome, 'blocked');
    assert.deepEqual(f1.fencing.lastCheck?.failing, ['level 1 ipmi (timed out)']);
    assert.match(f1.sentences.join(' '), /Fencing n1 would fail: .*last checked 90 s ago/);
    assert.match(
      explainInstance(failing).risks.join('\n'),
      /a fence device of n1 failed its last check \(ipmi: timed out\)/,
    );
    // Never checked: unknown, and `required` will not bet on it.
    assert.equal(loss(threeReplicas({ fenceChecks: new Map() }), 'n1').fencing.wouldSucceed, 'unknown');
  });

  it('fencing best-effort with a failing device: failover after the fencing timeout', () => {
    const input = threeReplicas({
      instance: instance(3, sync, { ...required, fencing: 'best-effort', fencingTimeoutSeconds: 20 }),
      fenceChecks: new Map([['n1', check('n1', false)]]),
    });
    const n1 = loss(input, 'n1');
    assert.equal(n1.outcome, 'failover');
    assert.deepEqual(n1.expectedWriteGapSeconds, {
      typical: measuredWriteGapSeconds.typical + 20,
      worst: measuredWriteGapSeconds.worst + 20,
    });
  });

  it('a service that never waits for its standbys (Redis): its lag is at risk even under received', () => {
    const redis = threeReplicas({
      instance: instance(3, { durability: 'received', localIo: 'batched' }, required),
      acknowledgedOnStandby: [],
    });
    const n1 = loss(redis, 'n1');
    assert.equal(n1.outcome, 'failover');
    assert.equal(n1.dataAtRiskBytes, 100);
    assert.match(
      n1.sentences.join(' '),
      /Up to 100 bytes of acknowledged writes would be lost \(received does not wait/,
    );
  });

  it('no running standby on a live node: blocked', () => {
    const nodes = threeReplicas().nodes.map((n) => (n.name === 'n1' ? n : { ...n, alive: false }));
    const n1 = loss(threeReplicas({ nodes }), 'n1');
    assert.equal(n1.outcome, 'blocked');
    assert.match(n1.blockers.join(), /no running standby on a live node/);
  });

  it('risks: two replicas in one zone, a node near capacity, an old backup, no backup', () => {
    const nodes = [
      node('n1', 'a', [['pg-1', 0]]),
      node('n2', 'a', [['pg-1', 1]], { allocated: { cpuMillis: 3800, memoryMb: 1024, diskMb: 2048 } }),
      node('n3', 'c', [['pg-1', 2]]),
    ];
    const risks = explainInstance(threeReplicas({ nodes, backups: [backup(2 * 86_400)] })).risks.join('\n');
    assert.match(risks, /replicas 0 and 1 share zone a/);
    assert.match(risks, /node n2 is near capacity \(cpu 95%\)/);
    assert.match(risks, /the last backup is 2\.0 days old/);
    assert.match(explainInstance(threeReplicas({ backups: [] })).risks.join('\n'), /no completed backup/);
  });

  it('a single copy: losing its node is an outage until it is back', () => {
    const input = threeReplicas({
      instance: instance(1, asyncIo, { ...required, fencing: 'off' }, 'small'),
      replicated: false,
      placements: [placement(0, 'n1')],
      statuses: [
        (({ role: _role, position: _position, positionAt: _at, ...rest }) => rest)(status(0, 'n1', 'primary', 1)),
      ],
    });
    const n1 = loss(input, 'n1');
    assert.equal(n1.outcome, 'outage');
    assert.equal(n1.dataAtRiskBytes, null);
    const explanation = explainInstance(input);
    assert.equal(explanation.durability, null);
    assert.match(explanation.sentences.join(' '), /A single copy/);
  });

  it('why here: the scheduler’s filters pass on each replica’s node, with scores; a cordoned node fails one', () => {
    const explanation = explainInstance(threeReplicas());
    const first = explanation.replicas[0];
    assert.ok(first);
    assert.deepEqual(
      first.filters.map((f) => [f.filter, f.passed]),
      [
        ['nodeAlive', true],
        ['notFenced', true],
        ['schedulable', true],
        ['requiredLabels', true],
        ['nodeAntiAffinity', true],
        ['zoneAntiAffinity', true],
        ['fitsCapacity', true],
      ],
    );
    assert.deepEqual(
      first.scores.map((s) => s.score),
      ['leastAllocated', 'zoneSpread', 'volumeLocality'],
    );
    // Only n1 (its own) and n4 (empty, zone d) may hold replica 0: n2 and n3 hold its siblings.
    assert.deepEqual(first.alternatives.map((a) => a.node).sort(), ['n1', 'n4']);
    assert.equal(explanation.replicas[2]?.lagBytes, 100);
    assert.equal(explanation.replicas[0]?.lagBytes, 0);

    const nodes = threeReplicas().nodes.map((n) =>
      n.name === 'n2'
        ? { ...n, control: { cordoned: true, draining: false, reason: 'disk swap', by: 'ops', updatedAt: ago(60) } }
        : n,
    );
    const cordoned = explainInstance(threeReplicas({ nodes }));
    assert.deepEqual(
      cordoned.replicas[1]?.filters.filter((f) => !f.passed),
      [{ filter: 'schedulable', passed: false, reason: 'cordoned' }],
    );
    assert.match(cordoned.risks.join('\n'), /node n2 holds a replica and is cordoned/);
    assert.match(cordoned.sentences.join(' '), /n2 would not be chosen now: schedulable: cordoned/);
  });
});
