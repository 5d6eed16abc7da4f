import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const portsJs = fileURLToPath(new URL('../dist/cluster/ports.js', import.meta.url));

/** A separate process (as each `sf up` is) choosing `count` ports without listening on them. */
async function choosePorts(count: number): Promise<number[]> {
  const script = `import(${JSON.stringify(portsJs)}).then(async ({ freeListenPort }) => {
    const ports = [];
    for (let i = 0; i < ${count}; i++) ports.push(await freeListenPort());
    process.stdout.write(JSON.stringify(ports));
  });`;
  const { stdout } = await run(process.execPath, ['-e', script]);
  return JSON.parse(stdout) as number[];
}

it('two sf up processes choosing ports at once never choose the same one, and leave no reservation behind', async () => {
  // 300 each among 10 000: without reservations a shared port is all but certain (~99 %).
  const [first, second] = await Promise.all([choosePorts(300), choosePorts(300)]);
  assert.equal(new Set(first).size, 300);
  const shared = (first ?? []).filter((port) => (second ?? []).includes(port));
  assert.deepEqual(shared, [], 'no port chosen by both');
  const left = [...(first ?? []), ...(second ?? [])].filter((port) =>
    existsSync(join(tmpdir(), 'sf-listen-ports', String(port))),
  );
  assert.deepEqual(left, [], 'reservations are removed when the process exits');
});
