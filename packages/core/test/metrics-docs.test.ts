import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';

const docs = new URL('../../../docs/', import.meta.url);
const read = (name: string) => readFile(new URL(name, docs), 'utf8');

/** `sf_…` family names a text uses, histogram series folded into their family. */
function familiesIn(text: string): Set<string> {
  return new Set([...text.matchAll(/\bsf_[a-z_]+/g)].map((m) => m[0].replace(/_(bucket|count|sum)$/, '')));
}

describe('docs/metrics.md, alerts.yml and the Grafana dashboard agree', () => {
  it('every family the alert rules and the dashboard query is documented in metrics.md', async () => {
    const documented = familiesIn(await read('metrics.md'));
    const dashboard = JSON.parse(await read('grafana-dashboard.json')) as {
      panels: Array<{ targets: Array<{ expr: string }> }>;
    };
    const queried = familiesIn(dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr)).join('\n'));
    const alerted = familiesIn(await read('alerts.yml'));
    assert.ok(queried.size > 10 && alerted.size >= 5);
    for (const family of [...queried, ...alerted])
      assert.ok(documented.has(family), `${family} is not in docs/metrics.md`);
  });
});
