import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileRouterConfig, hostnameOf, RouteTable } from '../src/index.js';

const tcp = (epoch: number, port = 7001) => ({
  instanceId: 'db-1',
  protocol: 'tcp',
  port,
  target: { host: '10.0.0.5', port: 5432 },
  epoch,
});

describe('RouteTable', () => {
  it('applies newer epochs, ignores repeats and refuses older ones', () => {
    const table = new RouteTable();
    assert.equal(table.offer('db-1', tcp(5)).kind, 'set');
    assert.equal(table.offer('db-1', tcp(5)).kind, 'unchanged');
    const stale = table.offer('db-1', tcp(4));
    assert.equal(stale.kind, 'rejected');
    assert.ok(stale.kind === 'rejected' && stale.stale);
    assert.equal(table.get('db-1')?.epoch, 5);
    const newer = table.offer('db-1', { ...tcp(9), target: { host: '10.0.0.6', port: 5432 } });
    assert.ok(newer.kind === 'set' && newer.previous?.epoch === 5);
    assert.equal(table.offer('db-1', undefined).kind, 'delete');
    assert.equal(table.offer('db-1', undefined).kind, 'unchanged');
  });

  it('refuses malformed records and keeps the route in force', () => {
    const table = new RouteTable();
    table.offer('db-1', tcp(5));
    const cases: unknown[] = [
      { ...tcp(6), port: 0 },
      { ...tcp(6), port: 70_000 },
      { ...tcp(6), instanceId: 'db-2' },
      { ...tcp(6), epoch: -1 },
      { ...tcp(6), target: { host: '', port: 1 } },
      { ...tcp(6), protocol: 'http' },
      { ...tcp(6), protocol: 'http', hostname: 'bad host' },
      'not an object',
      // Limits may be absent, never unreadable: a route must not be served without them.
      { ...tcp(6), limits: null },
      { ...tcp(6), limits: 50 },
      { ...tcp(6), limits: [] },
      { ...tcp(6), limits: {} },
      { ...tcp(6), limits: { maxSessions: 0 } },
      { ...tcp(6), limits: { maxSessions: -5 } },
      { ...tcp(6), limits: { maxSessions: 2.5 } },
      { ...tcp(6), limits: { maxSessions: '50' } },
      { ...tcp(6), limits: { maxSessions: 1e7 } },
    ];
    for (const value of cases) {
      const result = table.offer('db-1', value);
      assert.equal(result.kind, 'rejected', JSON.stringify(value));
      assert.ok(result.kind === 'rejected' && !result.stale);
    }
    assert.equal(table.get('db-1')?.epoch, 5);
  });

  it('keeps the limits of a record, and applies a limits change at the same epoch', () => {
    const table = new RouteTable();
    table.offer('db-1', tcp(5));
    assert.equal(table.get('db-1')?.limits, undefined, 'a record without limits stays without');
    const limited = table.offer('db-1', { ...tcp(5), limits: { maxSessions: 20, futureField: true } });
    assert.equal(limited.kind, 'set');
    assert.deepEqual(table.get('db-1')?.limits, { maxSessions: 20 });
    assert.equal(table.offer('db-1', { ...tcp(5), limits: { maxSessions: 20 } }).kind, 'unchanged');
    assert.equal(table.offer('db-1', { ...tcp(5), limits: { maxSessions: 30 } }).kind, 'set');
  });

  it('indexes HTTP routes by lower-cased host name, first route wins a conflict', () => {
    const table = new RouteTable();
    const http = (id: string, hostname: string) => ({ ...tcp(1), instanceId: id, protocol: 'http', port: 0, hostname });
    table.offer('web-1', http('web-1', 'Shop.Example.com'));
    table.offer('web-2', http('web-2', 'shop.example.com'));
    assert.equal(table.byHostname('shop.example.com')?.instanceId, 'web-1');
    assert.match(table.hostnameConflict('web-2') ?? '', /already routed to web-1/);
    table.offer('web-1', undefined);
    assert.equal(table.byHostname('shop.example.com')?.instanceId, 'web-2');
    assert.equal(table.hostnameConflict('web-2'), undefined);
  });
});

describe('hostnameOf', () => {
  it('drops the port, the trailing dot and the case', () => {
    assert.equal(hostnameOf('App.Example.COM:8080'), 'app.example.com');
    assert.equal(hostnameOf('app.example.com.'), 'app.example.com');
    assert.equal(hostnameOf('[::1]:80'), '[::1]');
    assert.equal(hostnameOf(undefined), undefined);
    assert.equal(hostnameOf('host:notaport'), undefined);
  });
});

describe('router config', () => {
  it('fills every default and refuses unknown fields', () => {
    const config = compileRouterConfig({ etcdEndpoints: ['http://127.0.0.1:2379'] });
    assert.deepEqual(config, {
      etcdEndpoints: ['http://127.0.0.1:2379'],
      etcdKeepaliveMs: 0,
      keyspaceRoot: '/sf',
      listenHost: '127.0.0.1',
      httpPort: null,
      connectTimeoutMs: 5000,
      holdWhileRefusedMs: 1000,
      defaultMaxSessions: 50,
      clientRouteShare: 0.5,
      maxSessionsPerClient: 1000,
      idleTimeoutMs: 300_000,
      maxOpenSessions: null,
      limitLogIntervalMs: 10_000,
    });
    assert.ok(Object.isFrozen(config));
    assert.throws(() => compileRouterConfig({}), /etcdEndpoints/);
    assert.throws(() => compileRouterConfig({ etcdEndpoints: ['http://x'], httpPort: -1 }), /httpPort/);
    assert.throws(() => compileRouterConfig({ etcdEndpoints: ['http://x'], port: 1 }), /unknown field "port"/);
    const bad: Array<[string, unknown]> = [
      ['defaultMaxSessions', 0],
      ['clientRouteShare', 0],
      ['clientRouteShare', 1.5],
      ['maxSessionsPerClient', 0],
      ['idleTimeoutMs', -1],
      ['idleTimeoutMs', 2 ** 31],
      ['maxOpenSessions', 0],
      ['maxOpenSessions', '100'],
      ['limitLogIntervalMs', 0],
      // The Node bridge that `dataPlane` chose is gone: TCP routes are HAProxy's.
      ['dataPlane', 'node'],
    ];
    for (const [field, value] of bad) {
      assert.throws(
        () => compileRouterConfig({ etcdEndpoints: ['http://x'], [field]: value }),
        new RegExp(field),
        `${field}: ${JSON.stringify(value)}`,
      );
    }
    assert.equal(compileRouterConfig({ etcdEndpoints: ['http://x'], idleTimeoutMs: 0 }).idleTimeoutMs, 0);
  });
});
