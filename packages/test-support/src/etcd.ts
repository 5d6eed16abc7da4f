import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  connectEtcd,
  type Etcd3,
  type EtcdProcess,
  type EtcdServerTls,
  type Keyspace,
  startEtcd,
} from '@service-foundry/core';
import { uniqueKeyspace } from './ids.js';
import { makeTempDir, type TempDir } from './temp-dir.js';

export interface TestEtcdOptions {
  /**
   * Serve TLS only with client certificates, as `sf up` runs etcd; `client` then connects
   * as `tls.client`.
   * @default undefined (clear text on loopback)
   */
  tls?: EtcdServerTls;
  /** How many times to try, each on new free ports, before giving up. @default 3 */
  attempts?: number;
  /** How long one try waits for etcd to answer `/health`. @default 15_000 (core's `startEtcd`) */
  startTimeoutMs?: number;
}

/** A throw-away etcd: its own process, data folder and ports, removed again by `stop()`. */
export interface TestEtcd {
  endpoint: string;
  /** The etcd process id, for tests that pause it (SIGSTOP). */
  pid: number;
  /** A client of the test's own, closed by `stop()`. */
  client: Etcd3;
  /** A keyspace root no other test uses; `isolate()` moves to a new one. */
  keys: Keyspace;
  /** Gives the next test a keyspace root of its own (and `keys` then names it). */
  isolate(): Keyspace;
  /** Stops etcd, closes the client and removes the data; calling it again does nothing. */
  stop(): Promise<void>;
}

/**
 * The free ports etcd is given are only free when picked: another process (test files of
 * other packages run side by side) can bind one before etcd does, and etcd then exits.
 * A new try gets new ports; the last failure is thrown with the end of etcd's own log.
 */
async function startInTempDir(options: TestEtcdOptions): Promise<{ etcd: EtcdProcess; dir: TempDir }> {
  const attempts = options.attempts ?? 3;
  for (let attempt = 1; ; attempt += 1) {
    const dir = await makeTempDir('sf-test-etcd');
    try {
      const etcd = await startEtcd({
        dataDir: join(dir.path, 'data'),
        ...(options.tls ? { tls: options.tls } : {}),
        ...(options.startTimeoutMs ? { startTimeoutMs: options.startTimeoutMs } : {}),
      });
      return { etcd, dir };
    } catch (error) {
      const log = await readFile(join(dir.path, 'data', 'etcd.log'), 'utf8').catch(() => '');
      await dir.remove();
      if (attempt >= attempts) {
        const tail = log.trim().split('\n').slice(-5).join('\n');
        throw new Error(`etcd did not start in ${attempts} attempts: ${(error as Error).message}\n${tail}`, {
          cause: error,
        });
      }
    }
  }
}

/** Starts a one-member etcd on free loopback ports with a temp data folder. */
export async function startTestEtcd(options: TestEtcdOptions = {}): Promise<TestEtcd> {
  const { etcd, dir } = await startInTempDir(options);
  const client = connectEtcd({ endpoints: [etcd.endpoint], ...(options.tls ? { tls: options.tls.client } : {}) });
  let stopped: Promise<void> | undefined;
  const fixture: TestEtcd = {
    endpoint: etcd.endpoint,
    pid: etcd.pid,
    client,
    keys: uniqueKeyspace(),
    isolate: () => {
      fixture.keys = uniqueKeyspace();
      return fixture.keys;
    },
    stop: () => {
      stopped ??= (async () => {
        client.close();
        await etcd.stop();
        await dir.remove();
      })();
      return stopped;
    },
  };
  return fixture;
}
