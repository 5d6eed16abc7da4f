import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import {
  connectEtcd,
  type Etcd3,
  type EtcdProcess,
  Keyspace,
  type Logger,
  SecretBox,
  startEtcd,
} from '@service-foundry/core';
import Docker from 'dockerode';
import { pino } from 'pino';
import { pack } from 'tar-stream';
import {
  type DeviceRunContext,
  defaultAgentDirs,
  defaultRefusedOptions,
  FenceAgents,
  type FenceDeviceConfig,
  type FencingOptions,
  parseFenceDevices,
} from '../src/index.js';

export const docker = new Docker({ socketPath: '/var/run/docker.sock' });

/** The key fence devices are sealed with in tests (one per machine, made once). */
export const secretBox = await SecretBox.fromKeyFile(
  await SecretBox.ensureKeyFile(join(tmpdir(), 'sf-test-secrets.key')),
);

export function uniqueId(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

export async function tempDir(prefix: string): Promise<{ path: string; remove(): Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), `sf-fencing-${prefix}-`));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

/** A logger whose every line is kept, to check what reaches logs. */
export function capturingLogger(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString('utf8'));
      done();
    },
  });
  return { log: pino({ level: 'debug' }, sink), lines };
}

export function silentLogger(): Logger {
  return pino({ level: process.env.SF_TEST_LOG_LEVEL ?? 'silent' });
}

/**
 * A fence agent `fence_<name>` in `dir` (a `/bin/sh` script) whose behaviour the test
 * decides. Like a real agent it answers `action=metadata`, declaring `parameters` (name →
 * content type); any other action runs `body`, with the first stdin line (`action=…`) in
 * `$first` and the rest still on stdin. Returns its path; `dir` must be allow-listed
 * (see {@link testAgents}) for the runner to run it.
 */
export async function writeAgent(
  dir: string,
  name: string,
  body: string,
  parameters: Record<string, string> = {},
): Promise<string> {
  const agent = `fence_${name.replaceAll('-', '_')}`;
  const declared = Object.entries(parameters).map(
    ([param, type]) =>
      `\t<parameter name="${param}" unique="0" required="0">\n` +
      `\t\t<getopt mixed="--${param.replaceAll('_', '-')}=[value]" />\n` +
      `\t\t<content type="${type}" />\n\t</parameter>`,
  );
  const metadata = [
    '<?xml version="1.0" ?>',
    `<resource-agent name="${agent}" shortdesc="test agent">`,
    '<parameters>',
    ...declared,
    '</parameters>',
    '</resource-agent>',
  ].join('\n');
  const path = join(dir, agent);
  await writeFile(
    path,
    `#!/bin/sh\nIFS= read -r first\nif [ "$first" = "action=metadata" ]; then\ncat <<'XML'\n${metadata}\nXML\nexit 0\nfi\n${body}\n`,
  );
  await chmod(path, 0o755);
  return path;
}

/** The fencing defaults' allow-list (/usr/sbin, packages/fencing/bin) plus `dirs`. */
export function testAgentDirs(...dirs: string[]): string[] {
  return [...defaultAgentDirs(), ...dirs];
}

/** The gate the runner uses, with test agents' directories allow-listed too. */
export function testAgents(...dirs: string[]): FenceAgents {
  return new FenceAgents({
    agentDirs: testAgentDirs(...dirs),
    refusedOptions: defaultRefusedOptions,
    metadataTimeoutMs: 10_000,
  });
}

/** A device with the schema's defaults filled in, as the runner gets it from a stored config. */
export function device(fields: Partial<FenceDeviceConfig> & { agent: string }): FenceDeviceConfig {
  const parsed = parseFenceDevices({ levels: [{ devices: [fields] }] });
  return parsed.levels[0]?.devices[0] as FenceDeviceConfig;
}

export function runContext(log: Logger, node = 'node-1', agents = testAgents()): DeviceRunContext {
  return {
    node,
    agents,
    maxOutputBytes: 4096,
    retryDelayMs: 20,
    log,
  };
}

/** Fencing options for tests: quick retries and polls, no events unless asked. */
export const fastOptions: Partial<FencingOptions> = { retryDelayMs: 20, waitPollMs: 20, recordEvents: false };

/** A fence_dummy device whose power state lives in `statusFile` (`on` / `off`). */
export function dummyDevice(statusFile: string, extra: Partial<FenceDeviceConfig> = {}): FenceDeviceConfig {
  return device({
    agent: 'fence_dummy',
    options: { status_file: statusFile },
    timeoutSeconds: 10,
    retries: 0,
    ...extra,
  });
}

export async function powerFile(dir: string, name: string, state: 'on' | 'off'): Promise<string> {
  const path = join(dir, name);
  // fence_dummy compares the whole file: no trailing newline.
  await writeFile(path, state);
  return path;
}

export async function readPower(path: string): Promise<string> {
  return (await readFile(path, 'utf8')).trim();
}

export interface TestEtcd {
  etcd: EtcdProcess;
  client: Etcd3;
  keys: Keyspace;
  stop(): Promise<void>;
}

/** A real etcd in a temp dir, a client, and a keyspace root of the test's own. */
export async function startTestEtcd(): Promise<TestEtcd> {
  const dir = await tempDir('etcd');
  const etcd = await startEtcd({ dataDir: join(dir.path, 'data') });
  const client = connectEtcd({ endpoints: [etcd.endpoint] });
  return {
    etcd,
    client,
    keys: new Keyspace(`/test-${randomBytes(6).toString('hex')}`),
    stop: async () => {
      client.close();
      await etcd.stop();
      await dir.remove();
    },
  };
}

/** True while a process with this pid exists and is not a zombie. */
export async function processRuns(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

async function busyboxTar(): Promise<Buffer> {
  const busybox = await readFile('/bin/busybox');
  const archive = pack();
  const mtime = new Date(0);
  const chunks: Buffer[] = [];
  archive.on('data', (chunk: unknown) => chunks.push(chunk as Buffer));
  const done = new Promise<void>((resolve, reject) => {
    archive.on('end', resolve);
    archive.on('error', reject);
  });
  archive.entry({ name: 'bin/', type: 'directory', mode: 0o755, mtime });
  archive.entry({ name: 'bin/busybox', mode: 0o755, mtime }, busybox);
  archive.finalize();
  await done;
  return Buffer.concat(chunks);
}

/**
 * A tiny image (busybox-static, `sleep` as PID 1) made with `docker import` like the agent
 * tests' images: no registry needed. Tagged by content and reused.
 */
export async function ensureSleepImage(): Promise<string> {
  const tar = await busyboxTar();
  const cmd = ['/bin/busybox', 'sleep', '3600'];
  const hash = createHash('sha256').update(tar).update(JSON.stringify(cmd)).digest('hex').slice(0, 16);
  const image = `service-foundry-test/busybox:sleep-${hash}`;
  try {
    await docker.getImage(image).inspect();
    return image;
  } catch {
    // Not imported yet.
  }
  const progress = await docker.importImage(Readable.from([tar]), {
    repo: 'service-foundry-test/busybox',
    tag: `sleep-${hash}`,
    changes: [`CMD ${JSON.stringify(cmd)}`],
  } as object);
  await new Promise<void>((resolve, reject) => {
    docker.modem.followProgress(progress, (error) => (error ? reject(error) : resolve()));
  });
  return image;
}

/** Starts a sleeping container with `labels`; the caller removes it by id. */
export async function startSleeper(image: string, name: string, labels: Record<string, string>): Promise<string> {
  const container = await docker.createContainer({
    Image: image,
    name,
    Labels: labels,
    HostConfig: { RestartPolicy: { Name: 'no' } },
  });
  await container.start();
  return container.id;
}

export async function removeContainer(id: string): Promise<void> {
  await docker
    .getContainer(id)
    .remove({ force: true })
    .catch(() => undefined);
}
