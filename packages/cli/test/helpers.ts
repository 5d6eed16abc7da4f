import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { startBroker } from '@service-foundry/broker';
import { makeTempDir, spawnWatched, type WatchedProcess } from '@service-foundry/test-support';
import { operatorLogin } from '@service-foundry/test-support/broker-calls';
import { type Harness, startBrokerHarness } from '@service-foundry/test-support/broker-harness';

const cliMain = resolve(import.meta.dirname, '../dist/main.js');

/** A broker (its build) on a throw-away etcd, and an `$SF_HOME` whose cli.json targets it. */
export interface CliHarness {
  h: Harness;
  /** Runs `sf` against the broker as an operator, its output collected; `close()` kills what is left. */
  sf(...args: string[]): WatchedProcess;
  close(): Promise<void>;
}

export async function startCliHarness(): Promise<CliHarness> {
  const h = await startBrokerHarness({ startBroker });
  const dir = await makeTempDir('sf-cli-test');
  const home = join(dir.path, 'sf-home');
  // As after `sf up`: the CLI reads its target and the operator's password from cli.json.
  await mkdir(home, { mode: 0o700 });
  const target = { url: h.broker.url, username: operatorLogin.user, password: operatorLogin.password };
  await writeFile(join(home, 'cli.json'), JSON.stringify(target), { mode: 0o600 });
  const running: WatchedProcess[] = [];
  return {
    h,
    sf: (...args) => {
      const run = spawnWatched(process.execPath, [cliMain, ...args], { env: { ...process.env, SF_HOME: home } });
      running.push(run);
      return run;
    },
    close: async () => {
      for (const run of running) if (run.running()) run.child.kill('SIGKILL');
      await h.close();
      await dir.remove();
    },
  };
}
