import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { captureLog, startTestEtcd, type TestEtcd, uniqueKeyspace } from '@service-foundry/test-support';
import {
  allocationCodec,
  assignmentCodec,
  BadRecordError,
  backupCodec,
  bindingCodec,
  ErrorCodes,
  type Etcd3,
  eventCodec,
  instanceCodec,
  type MirrorChange,
  type NodeRecord,
  nodeCodec,
  nodeControlCodec,
  nodeFenceCodec,
  PrefixMirror,
  placementCodec,
  primaryCodec,
  type RecordCodec,
  readPrefix,
  readRecord,
  readSealed,
  readSealedPrefix,
  relocationCodec,
  routeCodec,
  SecretBox,
  SecretBoxError,
  schedulerMemberCodec,
  schedulingStatusCodec,
  sealedValue,
  secretCodec,
  statusCodec,
  tombstoneCodec,
  transferStatusCodec,
  waitFor,
} from '../src/index.js';

const at = '2025-01-01T00:00:00.000Z';
const resources = { cpuMillis: 250, memoryMb: 256, diskMb: 1024 };
const figures = { mode: 'full', bytes: 10, wireBytes: 12, files: 1, deleted: 0, durationMs: 5, mbPerSecond: 2 };

/**
 * One row per record family: a valid record at its key, and one malformation of each kind
 * (a field of the wrong type, a required field missing, a value outside its enum) with the
 * field the error must name.
 */
interface Family {
  codec: RecordCodec<unknown>;
  key: string;
  valid: Record<string, unknown>;
  wrongType: [field: string, value: unknown];
  missing: string;
  badEnum?: [field: string, value: unknown];
}

const families: Family[] = [
  {
    codec: nodeCodec,
    key: '/sf/nodes/n1',
    valid: { name: 'n1', address: '10.0.0.1', capacity: resources, labels: { zone: 'a' }, startedAt: at },
    wrongType: ['capacity', { cpuMillis: 'lots', memoryMb: 1, diskMb: 1 }],
    missing: 'address',
  },
  {
    codec: allocationCodec,
    key: '/sf/allocations/n1',
    valid: { node: 'n1', replicas: { 'i1/0': { instanceId: 'i1', ordinal: 0, resources } } },
    wrongType: ['replicas', []],
    missing: 'node',
  },
  {
    codec: instanceCodec,
    key: '/sf/instances/i1',
    valid: {
      id: 'i1',
      name: 'orders',
      serviceId: 's',
      planId: 'p',
      serviceName: 'postgres',
      planName: 'small',
      parameters: {},
      replicas: 2,
      resources,
      routerPort: 30001,
      context: { platform: 'sf' },
      createdAt: at,
      phase: 'ready',
      message: '',
      operation: {
        id: 'op',
        type: 'update',
        state: 'failed',
        description: '',
        startedAt: at,
        request: { parameters: { local_io: 'batched' }, maintenanceVersion: '4.0.0' },
        instanceUsable: true,
        updateRepeatable: false,
      },
      maintenanceVersion: '4.0.0',
      io: { durability: 'remote-fsync', localIo: 'fsync' },
      failover: { fencing: 'required', fencingTimeoutSeconds: 30, maxLagBytes: 0 },
    },
    wrongType: ['replicas', '2'],
    missing: 'operation',
    badEnum: ['phase', 'sleeping'],
  },
  {
    codec: secretCodec,
    key: '/sf/secrets/i1',
    valid: { adminUser: 'postgres', adminPassword: 'x'.repeat(32) },
    wrongType: ['replicationUser', 7],
    missing: 'adminPassword',
  },
  {
    codec: placementCodec,
    key: '/sf/placements/i1/0',
    valid: { instanceId: 'i1', ordinal: 0, node: 'n1', placedAt: at, scheduler: 's1', previousNodes: ['n0'] },
    wrongType: ['ordinal', 'zero'],
    missing: 'node',
  },
  {
    codec: assignmentCodec,
    key: '/sf/assignments/n1/i1/0',
    valid: {
      instanceId: 'i1',
      ordinal: 0,
      serviceName: 'postgres',
      planName: 'small',
      resources,
      desired: 'running',
      role: 'replica',
      epoch: 7,
      upstream: { host: '10.0.0.2', port: 5432 },
      seed: { from: { node: 'n2', volume: 'replica.i1.0' }, round: 1 },
    },
    wrongType: ['epoch', -1],
    missing: 'desired',
    badEnum: ['role', 'leader'],
  },
  {
    codec: statusCodec,
    key: '/sf/status/i1/0',
    valid: { instanceId: 'i1', ordinal: 0, node: 'n1', state: 'running', message: '', updatedAt: at, port: 5432 },
    wrongType: ['port', 70_000],
    missing: 'updatedAt',
    badEnum: ['state', 'dreaming'],
  },
  {
    codec: primaryCodec,
    key: '/sf/primary/i1',
    valid: { instanceId: 'i1', ordinal: 0, node: 'n1', host: '10.0.0.1', port: 5432, electedAt: at },
    wrongType: ['host', null],
    missing: 'electedAt',
  },
  {
    codec: routeCodec,
    key: '/sf/routes/i1',
    valid: { instanceId: 'i1', protocol: 'tcp', port: 30001, target: { host: '10.0.0.1', port: 5432 }, epoch: 3 },
    wrongType: ['limits', null],
    missing: 'epoch',
    badEnum: ['protocol', 'udp'],
  },
  {
    codec: bindingCodec,
    key: '/sf/bindings/i1/b1',
    valid: {
      id: 'b1',
      instanceId: 'i1',
      name: 'app',
      username: 'u',
      password: 'p',
      createdAt: at,
      context: {},
      parameters: {},
    },
    wrongType: ['parameters', 'none'],
    missing: 'password',
  },
  {
    codec: eventCodec,
    key: '/sf/events/000000000000001-ab',
    valid: { at, kind: 'replica-placed', message: 'placed', instanceId: 'i1', source: 'scheduler' },
    wrongType: ['node', 3],
    missing: 'source',
  },
  {
    codec: nodeControlCodec,
    key: '/sf/node-controls/n1',
    valid: { node: 'n1', cordoned: true, draining: false, reason: 'maintenance', updatedAt: at, by: 'alice' },
    wrongType: ['cordoned', 'yes'],
    missing: 'draining',
  },
  {
    codec: nodeFenceCodec,
    key: '/sf/fence/n1',
    valid: { node: 'n1', state: 'fenced', reason: 'gone', by: 'controller', at, level: 1 },
    wrongType: ['level', 'one'],
    missing: 'state',
    badEnum: ['state', 'half-fenced'],
  },
  {
    codec: schedulingStatusCodec,
    key: '/sf/scheduling/i1',
    valid: {
      instanceId: 'i1',
      desired: 2,
      placed: 1,
      pending: [{ ordinal: 1, reason: 'no room', noRoom: true }],
      updatedAt: at,
    },
    wrongType: ['pending', { ordinal: 1 }],
    missing: 'placed',
  },
  {
    codec: transferStatusCodec,
    key: '/sf/transfers/i1/0/n2',
    valid: {
      instanceId: 'i1',
      ordinal: 0,
      node: 'n2',
      from: { node: 'n1', volume: 'replica.i1.0' },
      round: 1,
      state: 'copied',
      message: '',
      result: figures,
      updatedAt: at,
    },
    wrongType: ['round', 1.5],
    missing: 'from',
    badEnum: ['state', 'lost'],
  },
  {
    codec: relocationCodec,
    key: '/sf/relocations/i1/0',
    valid: {
      instanceId: 'i1',
      ordinal: 0,
      from: 'n1',
      to: 'n2',
      keepSource: false,
      phase: 'done',
      message: '',
      reason: 'operator',
      requestedBy: 'alice',
      requestedAt: at,
      updatedAt: at,
      precopy: figures,
    },
    wrongType: ['keepSource', 'no'],
    missing: 'phase',
    badEnum: ['reason', 'whim'],
  },
  {
    codec: backupCodec,
    key: '/sf/backups/i1/b-1',
    valid: {
      id: 'b-1',
      instanceId: 'i1',
      instanceName: 'orders',
      serviceName: 'postgres',
      planName: 'small',
      state: 'completed',
      message: '',
      requestedBy: 'alice',
      requestedAt: at,
      method: 'hook',
      figures,
    },
    wrongType: ['figures', { ...figures, bytes: 'many' }],
    missing: 'requestedBy',
    badEnum: ['method', 'telepathy'],
  },
  {
    codec: schedulerMemberCodec,
    key: '/sf/schedulers/s1',
    valid: { name: 's1', mode: 'leader', startedAt: at },
    wrongType: ['startedAt', 0],
    missing: 'name',
    badEnum: ['mode', 'anarchy'],
  },
  {
    codec: tombstoneCodec,
    key: '/sf/tombstones/i1',
    valid: { id: 'i1', serviceId: 's', planId: 'p', operationId: 'deprovision-1', deletedAt: at },
    wrongType: ['deletedAt', 7],
    missing: 'operationId',
  },
];

function rejects(family: Family, value: unknown, field: string): void {
  assert.throws(
    () => family.codec.parse(family.key, value),
    (error: unknown) => {
      assert.ok(error instanceof BadRecordError, String(error));
      assert.equal(error.code, ErrorCodes.badRecord);
      assert.equal(error.key, family.key);
      assert.ok(error.message.includes(family.key), error.message);
      assert.ok(
        error.problems.some((p) => p.startsWith(`/${field}`)),
        `${family.codec.name}: ${error.problems.join('; ')} should name /${field}`,
      );
      return true;
    },
  );
}

describe('record codecs', () => {
  for (const family of families) {
    describe(family.codec.name, () => {
      it('parses a valid record, keeping fields it does not know', () => {
        const value = { ...structuredClone(family.valid), addedByANewerWriter: { x: 1 } };
        assert.deepEqual(family.codec.parse(family.key, structuredClone(value)), value);
      });
      it('refuses a field of the wrong type, naming the key and the field', () => {
        const [field, bad] = family.wrongType;
        rejects(family, { ...structuredClone(family.valid), [field]: bad }, field);
      });
      it('refuses a record without a required field', () => {
        const value: Record<string, unknown> = structuredClone(family.valid);
        delete value[family.missing];
        rejects(family, value, family.missing);
      });
      if (family.badEnum) {
        const [field, bad] = family.badEnum;
        it(`refuses ${JSON.stringify(bad)} as ${field}`, () => {
          rejects(family, { ...structuredClone(family.valid), [field]: bad }, field);
        });
      }
      it('refuses what is not an object', () => {
        for (const value of [null, 'text', 42, []]) {
          assert.throws(() => family.codec.parse(family.key, value), BadRecordError);
        }
      });
    });
  }

  it('lets an optional field be absent but never null', () => {
    const node = families.find((f) => f.codec === nodeCodec) as Family;
    assert.ok(nodeCodec.parse(node.key, node.valid));
    rejects(node, { ...node.valid, volumeUrl: null }, 'volumeUrl');
    const route = families.find((f) => f.codec === routeCodec) as Family;
    assert.throws(
      () => routeCodec.parse(route.key, { ...route.valid, limits: null }),
      /\/limits must be an object, not null/,
    );
  });

  it('checks an assignment, a route and a tombstone against the key they are stored under', () => {
    const assignment = families.find((f) => f.codec === assignmentCodec) as Family;
    assert.throws(
      () => assignmentCodec.parse('/sf/assignments/n1/i2/0', assignment.valid),
      /\/instanceId does not match/,
    );
    assert.throws(() => assignmentCodec.parse('/sf/assignments/n1/i1/1', assignment.valid), /\/ordinal does not match/);
    const noEpoch: Record<string, unknown> = { ...assignment.valid, role: 'primary' };
    delete noEpoch.epoch;
    assert.throws(() => assignmentCodec.parse(assignment.key, noEpoch), /\/epoch is required for a primary/);
    const badSeed = { ...assignment.valid, seed: { from: { node: 'n2', volume: 'etc.passwd' }, round: 1 } };
    assert.throws(() => assignmentCodec.parse(assignment.key, badSeed), /\/seed\/from\/volume/);
    const finalSeed = { from: { node: 'n2', volume: 'replica.i1.0' }, round: 3, final: 'primary' };
    assert.equal(
      assignmentCodec.parse(assignment.key, { ...assignment.valid, seed: finalSeed }).seed?.final,
      'primary',
    );
    const badFinal = { ...assignment.valid, seed: { ...finalSeed, final: true } };
    assert.throws(() => assignmentCodec.parse(assignment.key, badFinal), /\/seed\/final/);
    const route = families.find((f) => f.codec === routeCodec) as Family;
    assert.throws(() => routeCodec.parse('/sf/routes/i2', route.valid), /stored under i2 names instance i1/);
    const tombstone = families.find((f) => f.codec === tombstoneCodec) as Family;
    assert.throws(
      () => tombstoneCodec.parse('/sf/tombstones/i2', tombstone.valid),
      /stored under i2 names instance i1/,
    );
  });
});

/** A logger whose lines the test can read. */
const capturingLog = () => captureLog({ level: 'warn' });

describe('reads through codecs (real etcd)', () => {
  let etcd: TestEtcd;
  let client: Etcd3;
  const keys = uniqueKeyspace('records');
  const node = (name: string): NodeRecord => ({
    name,
    address: '10.0.0.1',
    capacity: resources,
    labels: {},
    startedAt: at,
  });
  const put = (key: string, value: string) => client.put(key).value(value).exec();

  before(async () => {
    etcd = await startTestEtcd();
    client = etcd.client;
  });
  after(async () => {
    await etcd?.stop();
  });

  it('readRecord returns the record, undefined when absent, and throws on a malformed one', async () => {
    await put(keys.node('good'), JSON.stringify(node('good')));
    assert.deepEqual((await readRecord(client, nodeCodec, keys.node('good')))?.value, node('good'));
    assert.equal(await readRecord(client, nodeCodec, keys.node('absent')), undefined);
    await put(keys.node('garbled'), '{"name":');
    await assert.rejects(readRecord(client, nodeCodec, keys.node('garbled')), (error: unknown) => {
      assert.ok(error instanceof BadRecordError);
      assert.equal(error.key, keys.node('garbled'));
      assert.match(error.message, /is not JSON/);
      return true;
    });
  });

  it('readPrefix skips and logs a malformed record and returns the good ones', async () => {
    await put(keys.node('broken'), JSON.stringify({ ...node('broken'), capacity: 'big' }));
    const { log, lines } = capturingLog();
    const snapshot = await readPrefix(client, nodeCodec, keys.nodes(), log);
    assert.deepEqual([...snapshot.items.keys()].sort(), [keys.node('good')]);
    assert.deepEqual(snapshot.rejected.map((e) => e.key).sort(), [keys.node('broken'), keys.node('garbled')]);
    assert.ok(lines.some((l) => l.msg === 'skipping malformed record' && l.key === keys.node('broken')));
    await client.delete().prefix(keys.nodes()).exec();
  });

  it('PrefixMirror skips a malformed write with a log line, keeps the last good record and delivers the rest', async () => {
    await put(keys.node('a'), JSON.stringify(node('a')));
    await put(keys.node('bad-at-start'), 'not json');
    const { log, lines } = capturingLog();
    const mirror = new PrefixMirror(client, nodeCodec, keys.nodes(), log);
    const changes: MirrorChange<NodeRecord>[] = [];
    const rejected: BadRecordError[] = [];
    mirror.on('change', (batch) => changes.push(...batch));
    mirror.on('rejected', (errors) => rejected.push(...errors));
    try {
      await mirror.start();
      assert.deepEqual([...mirror.items.keys()], [keys.node('a')], 'the malformed listing is skipped');
      assert.deepEqual(
        rejected.map((e) => e.key),
        [keys.node('bad-at-start')],
      );

      await put(keys.node('a'), JSON.stringify({ ...node('a'), labels: { zone: 7 } }));
      await put(keys.node('b'), JSON.stringify(node('b')));
      await waitFor(() => mirror.items.has(keys.node('b')), { description: 'the good write after the bad one' });
      assert.deepEqual(mirror.items.get(keys.node('a'))?.value, node('a'), 'the last good record stays');
      assert.ok(changes.every((c) => c.current === undefined || c.current.value.labels.zone !== (7 as never)));
      const bad = rejected.find((e) => e.key === keys.node('a'));
      assert.ok(bad, 'the malformed write is announced');
      assert.ok(
        bad.problems.some((p) => p.startsWith('/labels/zone')),
        bad.problems.join('; '),
      );
      assert.ok(lines.some((l) => l.msg === 'skipping malformed record' && l.key === keys.node('a')));
    } finally {
      await mirror.close();
      await client.delete().prefix(keys.nodes()).exec();
    }
  });

  it('sealed records open, then go through the codec', async () => {
    const box = new SecretBox(randomBytes(32));
    const good = { adminUser: 'postgres', adminPassword: 'p'.repeat(32) };
    await put(keys.secret('s1'), sealedValue(box, keys.secret('s1'), good));
    await put(keys.secret('s2'), sealedValue(box, keys.secret('s2'), { adminUser: 'postgres' }));
    assert.deepEqual((await readSealed(client, box, secretCodec, keys.secret('s1')))?.value, good);
    await assert.rejects(readSealed(client, box, secretCodec, keys.secret('s2')), /\/adminPassword is required/);
    const all = await readSealedPrefix(client, box, secretCodec, keys.secrets(), capturingLog().log);
    assert.deepEqual(
      all.map((s) => s.key),
      [keys.secret('s1')],
    );
    // A value moved under another key does not open: an alarm, thrown, never skipped.
    await put(keys.secret('s3'), sealedValue(box, keys.secret('s1'), good));
    await assert.rejects(
      readSealedPrefix(client, box, secretCodec, keys.secrets(), capturingLog().log),
      SecretBoxError,
    );
    await client.delete().prefix(keys.secrets()).exec();
  });
});
