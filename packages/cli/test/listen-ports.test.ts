import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { waitFor } from '@service-foundry/core';
import { spawnWatched, type WatchedProcess } from '@service-foundry/test-support/child-output';

const portsJs = fileURLToPath(new URL('../dist/cluster/ports.js', import.meta.url));

/**
 * A separate process (as each `sf up` is) choosing `count` ports without listening on them,
 * printing them, then holding its reservations until its stdin closes: as an `sf up` holds
 * them until it exits.
 */
function choosePorts(count: number): WatchedProcess {
  const script = `import(${JSON.stringify(portsJs)}).then(async ({ freeListenPort }) => {
    const ports = [];
    for (let i = 0; i < ${count}; i++) ports.push(await freeListenPort());
    process.stdout.write(JSON.stringify(ports) + '\\n');
    process.stdin.on('end', () => process.exit(0));
    process.stdin.resume();
  });`;
  return spawnWatched(process.execPath, ['-e', script], { stdio: ['pipe', 'pipe', 'pipe'] });
}

const chosen = (child: WatchedProcess): number[] | undefined => {
  const line = child
    .stdout()
    .split('\n')
    .find((l) => l.startsWith('['));
  return line ? (JSON.parse(line) as number[]) : undefined;
};

it('two sf up processes choosing ports at once never choose the same one, and leave no reservation behind', async (t) => {
  // 300 each among 10 000: without reservations a shared port is all but certain (~99 %).
  const children = [choosePorts(300), choosePorts(300)];
  t.after(async () => {
    for (const child of children) child.child.kill('SIGKILL');
  });
  const [first = [], second = []] = await Promise.all(
    children.map((child) => waitFor(() => chosen(child), { description: 'the chosen ports', timeoutMs: 60_000 })),
  );
  assert.equal(new Set(first).size, 300);
  const shared = first.filter((port) => second.includes(port));
  assert.deepEqual(shared, [], 'no port chosen by both while both hold their reservations');
  for (const child of children) child.child.stdin?.end();
  for (const child of children) assert.equal((await child.exited).code, 0);
  const left = [...first, ...second].filter((port) => existsSync(join(tmpdir(), 'sf-listen-ports', String(port))));
  assert.deepEqual(left, [], 'reservations are removed when the process exits');
});
