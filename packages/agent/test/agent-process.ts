import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type Keyspace, waitFor } from '@service-foundry/core';
import { makeTempDir, secretsKeyFile, spawnWatched, type WatchedProcess } from '@service-foundry/test-support';

const mainJs = fileURLToPath(new URL('../dist/main.js', import.meta.url));

/**
 * The built agent as its own process (`main.js --config`), logging at info, returned once
 * it logged "ready". Its config names the etcd, the keyspace and the test secrets key,
 * `config` on top. When `t` ends it is killed (resumed first, should the test have paused it).
 */
export async function startAgentProcess(
  t: TestContext,
  etcdEndpoint: string,
  keys: Keyspace,
  config: Record<string, unknown>,
): Promise<WatchedProcess> {
  assert.ok(existsSync(mainJs), `${mainJs} is missing: run \`npx tsc -b\` first`);
  const dir = await makeTempDir('sf-agent-main');
  const configFile = join(dir.path, 'agent.json');
  await writeFile(
    configFile,
    JSON.stringify({ etcdEndpoints: [etcdEndpoint], keyspaceRoot: keys.root, secretsKeyFile, ...config }),
  );
  const run = spawnWatched(process.execPath, [mainJs, '--config', configFile], {
    env: { ...process.env, SF_LOG_LEVEL: 'info' },
  });
  t.after(async () => {
    if (run.running()) {
      run.child.kill('SIGCONT');
      run.child.kill('SIGKILL');
      await run.exited;
    }
    await dir.remove();
  });
  await waitFor(() => /"msg":"ready"/.test(run.output()), { description: '"ready" from the agent' });
  return run;
}
