import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { seededRandom, uniqueId } from '@service-foundry/test-support';
import {
  basicAuth,
  operatorLogin,
  osbLogin,
  postgresServiceId,
  provisionBody,
  smallPlanId,
  viewerLogin,
} from '@service-foundry/test-support/broker-calls';
import { type Harness, rawHttp, startHarness } from './helpers.js';

/**
 * Deterministic: a failure names its request number, and the same seed reproduces it.
 * SF_FUZZ_SEED and SF_FUZZ_REQUESTS explore further (e.g. before a release).
 */
const seed = Number(process.env.SF_FUZZ_SEED ?? 0x5eed_2025);
const requests = Number(process.env.SF_FUZZ_REQUESTS ?? 600);

interface Fuzzed {
  method: string;
  path: string;
  headers: Map<string, string>;
  body: string | undefined;
}

/** Every route, as a method and a path template (`:i` instance, `:b` binding, `:n` node, `:k` backup). */
const routes: Array<[string, string]> = [
  ['GET', '/v2/catalog'],
  ['PUT', '/v2/service_instances/:i?accepts_incomplete=true'],
  ['GET', '/v2/service_instances/:i'],
  ['PATCH', '/v2/service_instances/:i?accepts_incomplete=true'],
  ['DELETE', `/v2/service_instances/:i?accepts_incomplete=true&service_id=${postgresServiceId}&plan_id=${smallPlanId}`],
  ['GET', '/v2/service_instances/:i/last_operation?operation=provision-0123456789abcdef'],
  ['PUT', '/v2/service_instances/:i/service_bindings/:b'],
  ['GET', '/v2/service_instances/:i/service_bindings/:b'],
  ['DELETE', `/v2/service_instances/:i/service_bindings/:b?service_id=${postgresServiceId}&plan_id=${smallPlanId}`],
  ['GET', '/sf/v1/instances'],
  ['GET', '/sf/v1/instances/:i'],
  ['GET', '/sf/v1/nodes'],
  ['GET', '/sf/v1/events?limit=20'],
  ['POST', '/sf/v1/nodes/:n/cordon'],
  ['POST', '/sf/v1/nodes/:n/uncordon'],
  ['POST', '/sf/v1/nodes/:n/drain'],
  ['POST', '/sf/v1/nodes/:n/fence'],
  ['POST', '/sf/v1/nodes/:n/unfence'],
  ['GET', '/sf/v1/nodes/:n/fence'],
  ['GET', '/sf/v1/nodes/:n/fence-devices'],
  ['PUT', '/sf/v1/nodes/:n/fence-devices'],
  ['DELETE', '/sf/v1/nodes/:n/fence-devices'],
  ['GET', '/sf/v1/fencing-history?limit=5'],
  ['POST', '/sf/v1/instances/:i/relocate'],
  ['GET', '/sf/v1/instances/:i/relocations'],
  ['POST', '/sf/v1/instances/:i/backups'],
  ['GET', '/sf/v1/instances/:i/backups'],
  ['GET', '/sf/v1/instances/:i/backups/:k'],
  ['POST', '/sf/v1/instances/:i/restore'],
  ['GET', '/healthz'],
];

const strangeSegments = [
  '..',
  '.',
  '%2e%2e',
  'a%2Fb',
  '%2F',
  '%00',
  '%zz',
  '%E0%A4%A',
  '-dash',
  '.hidden',
  '__proto__',
  'constructor',
  '%27%3B%20DROP%20TABLE',
  '%24%7Bjndi%3Aldap%7D',
  '%C3%A9t%C3%A9',
  '%F0%9F%92%A5',
  'a'.repeat(129),
  'a'.repeat(1100),
  'x%20y',
  'A',
];

const strangeValues: unknown[] = [
  null,
  true,
  0,
  -1,
  1e308,
  Number.MAX_SAFE_INTEGER,
  '',
  ' ',
  'é',
  '\u0000',
  '\u202e',
  'x'.repeat(5000),
  [],
  [1, 'a', null],
  {},
  { __proto__x: 1 },
  { nested: { deeper: { deepest: [[[[1]]]] } } },
];

describe('broker: fuzzing every route — never a 5xx, and a rejected request changes nothing', () => {
  let h: Harness;
  const provisioning = uniqueId('fz-prov');
  const ready = uniqueId('fz-ready');
  before(async () => {
    h = await startHarness();
    await h.putNode('node-a');
    const put = (id: string, name: string) => h.provision(id, { context: { instance_name: name } });
    assert.equal((await put(provisioning, 'fz-prov')).status, 202);
    assert.equal((await put(ready, 'fz-ready')).status, 202);
    await h.markReady(ready);
  });
  after(async () => {
    await h?.close();
  });

  it(`${requests} mutated requests (seed ${seed.toString(16)})`, async (t) => {
    const random = seededRandom(seed);
    const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)] as T;
    const chance = (p: number) => random() < p;

    const validBody = (method: string, template: string): unknown => {
      if (template.includes('service_bindings') && method === 'PUT') {
        return { service_id: postgresServiceId, plan_id: smallPlanId, context: { binding_name: 'k' } };
      }
      if (template.startsWith('/v2/service_instances/:i?') && method === 'PUT') {
        return provisionBody({ context: { instance_name: uniqueId('fz') }, parameters: { replicas: 1 } });
      }
      if (method === 'PATCH') return { service_id: postgresServiceId, parameters: { local_io: 'batched' } };
      if (template.endsWith('/relocate')) return { to: 'node-a' };
      if (template.endsWith('/restore')) return { backup: 'b-20250102T030405-abcdef', as: uniqueId('fz-copy') };
      if (template.endsWith('/fence-devices')) return { levels: [] };
      if (method === 'POST') return { reason: 'fuzz' };
      return undefined;
    };

    /** A JSON value derived from `value` with one random change somewhere inside. */
    const mutateValue = (value: unknown, depth = 0): unknown => {
      if (value === null || typeof value !== 'object' || depth > 3 || chance(0.3)) return pick(strangeValues);
      if (Array.isArray(value)) return chance(0.5) ? [...value, pick(strangeValues)] : value.slice(1);
      const record = { ...(value as Record<string, unknown>) };
      const keys = Object.keys(record);
      const roll = random();
      if (roll < 0.2 || keys.length === 0)
        record[pick(['extra', 'context', 'parameters', 'service_id', 'as'])] = pick(strangeValues);
      else if (roll < 0.35) delete record[pick(keys)];
      else {
        const key = pick(keys);
        record[key] = mutateValue(record[key], depth + 1);
      }
      return record;
    };

    const mutateBody = (value: unknown): string | undefined => {
      const roll = random();
      if (roll < 0.35) return value === undefined ? undefined : JSON.stringify(value);
      if (roll < 0.65) return JSON.stringify(mutateValue(value ?? {}));
      if (roll < 0.7) return `${'['.repeat(2000)}${']'.repeat(2000)}`;
      if (roll < 0.75) return JSON.stringify({ context: { a: 'x'.repeat(20_000) }, ...(value as object) });
      if (roll < 0.8) return '{"__proto__": {"polluted": true}}';
      if (roll < 0.85) return '{"service_id": "a", "service_id": 7}';
      if (roll < 0.9) return (JSON.stringify(value ?? {}) ?? '{}').slice(0, -1);
      if (roll < 0.95) return '';
      return String.fromCharCode(...Array.from({ length: 40 }, () => 33 + Math.floor(random() * 90)));
    };

    // Binding to the ready instance would reach for its database, which does not run here:
    // that 500 (BindingFailed) is a dependency's failure, not an answer to input.
    const instancesFor = (template: string) =>
      template.includes('service_bindings') ? [provisioning] : [provisioning, ready];
    const fillPath = (template: string): string =>
      template
        .replace(':i', chance(0.7) ? pick(instancesFor(template)) : pick([...strangeSegments, uniqueId('none')]))
        .replace(':b', chance(0.7) ? 'bind-1' : pick(strangeSegments))
        .replace(':n', chance(0.7) ? 'node-a' : pick([...strangeSegments, 'node-zz']))
        .replace(':k', chance(0.6) ? 'b-20250102T030405-abcdef' : pick(strangeSegments));

    const mutatePath = (path: string): string => {
      const roll = random();
      if (roll < 0.6) return path;
      const at = 1 + Math.floor(random() * (path.length - 1));
      const char = path[at] ?? 'a';
      if (roll < 0.68)
        return `${path.slice(0, at)}%${char.charCodeAt(0).toString(16).padStart(2, '0')}${path.slice(at + 1)}`;
      if (roll < 0.74) return `${path.slice(0, at)}${char.toUpperCase()}${path.slice(at + 1)}`;
      if (roll < 0.8) return `${path.slice(0, at)}/${path.slice(at)}`;
      if (roll < 0.86) return `${path.slice(0, at)}/./${path.slice(at)}`;
      if (roll < 0.9)
        return `${path}${path.includes('?') ? '&' : '?'}${pick(['accepts_incomplete=TRUE', 'limit=-1', 'limit=9999999', 'service_id=x&service_id=y', 'a[b]=c', 'node=%00'])}`;
      if (roll < 0.95) return `${path}/`;
      return `${path.slice(0, at)}%25${path.slice(at)}`;
    };

    const loginFor = (path: string) => (path.startsWith('/v2/') ? osbLogin : operatorLogin);
    const mutateHeaders = (path: string, body: string | undefined): Map<string, string> => {
      const headers = new Map<string, string>();
      const auth = random();
      if (auth < 0.75) headers.set('Authorization', basicAuth(loginFor(path)));
      else if (auth < 0.82) headers.set('Authorization', basicAuth(pick([osbLogin, operatorLogin, viewerLogin])));
      else if (auth < 0.88)
        headers.set(
          'Authorization',
          pick(['Bearer x', 'Basic', 'Basic !!!', 'Basic Og==', `Basic ${'A'.repeat(3000)}`]),
        );
      if (chance(0.85))
        headers.set(
          'X-Broker-API-Version',
          chance(0.85) ? '2.17' : pick(['3.0', '2', '2.x', '', '2.17, 2.17', '02.017']),
        );
      if (body !== undefined && chance(0.9)) {
        headers.set(
          'Content-Type',
          chance(0.8)
            ? 'application/json'
            : pick([
                'text/plain',
                'application/json; charset=utf-16',
                'application/x-www-form-urlencoded',
                'multipart/form-data',
                '*/*',
              ]),
        );
      }
      if (chance(0.15)) headers.set('X-SF-Operator', pick(['alice', '', 'a b', 'x'.repeat(100), '%00', 'ops@corp']));
      if (chance(0.1))
        headers.set('X-Broker-API-Originating-Identity', pick(['cloudfoundry eyJ1c2VyX2lkIjoiYSJ9', 'x', ' ']));
      if (chance(0.1)) headers.set('X-Broker-API-Request-Identity', pick(['r-1', 'é', 'x'.repeat(300)]));
      return headers;
    };

    const statuses = new Map<number, number>();
    for (let n = 0; n < requests; n++) {
      const [method, template] = pick(routes);
      const path = mutatePath(fillPath(template));
      const body = chance(0.85) ? mutateBody(validBody(method, template)) : mutateBody(pick(strangeValues));
      const sentMethod = chance(0.05) ? pick(['GET', 'PUT', 'PATCH', 'POST', 'DELETE', 'OPTIONS', 'TRACE']) : method;
      const request: Fuzzed = { method: sentMethod, path, headers: mutateHeaders(path, body), body };
      const head = [
        `${request.method} ${request.path} HTTP/1.1`,
        ...[...request.headers].map(([k, v]) => `${k}: ${v}`),
      ];
      const shown = `#${n} ${request.method} ${request.path.slice(0, 120)} ${JSON.stringify(Object.fromEntries(request.headers)).slice(0, 200)} ${String(request.body).slice(0, 200)}`;

      const before = await h.dump();
      const res = await rawHttp(h.broker.url, head.join('\r\n'), request.body);
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      assert.ok(res.status >= 200 && res.status < 500, `${shown}\n→ ${res.status} ${res.text.slice(0, 300)}`);
      if (res.status >= 400) {
        if (request.method !== 'HEAD' && res.status !== 410) {
          const error = res.body as { error?: unknown; description?: unknown };
          assert.equal(
            typeof error?.error,
            'string',
            `${shown}\n→ ${res.status} not an OSB body: ${res.text.slice(0, 300)}`,
          );
          assert.equal(typeof error?.description, 'string', shown);
        }
        assert.equal(await h.dump(), before, `${shown}\n→ ${res.status}: etcd changed`);
      }
    }
    // Still serving, and the mix reached past the first checks into the handlers.
    assert.equal((await h.call('GET', '/healthz', { auth: null })).status, 200);
    const summary = [...statuses].sort((a, b) => a[0] - b[0]);
    t.diagnostic(`answers by status: ${summary.map(([status, count]) => `${status}×${count}`).join(', ')}`);
    assert.ok(
      summary.some(([status]) => status < 300),
      `some requests succeeded: ${JSON.stringify(summary)}`,
    );
    assert.ok(summary.filter(([status]) => status >= 400).length >= 6, `varied rejections: ${JSON.stringify(summary)}`);
  });
});
