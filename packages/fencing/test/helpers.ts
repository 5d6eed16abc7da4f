import { chmod, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '@service-foundry/core';
import { docker, ensureBusyboxImage } from '@service-foundry/test-support/docker';
import {
  type DeviceRunContext,
  defaultAgentDirs,
  defaultRefusedOptions,
  FenceAgents,
  type FenceDeviceConfig,
  type FencingOptions,
  parseFenceDevices,
} from '../src/index.js';

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

/** A tiny image (busybox-static, `sleep` as PID 1): no registry needed. */
export function ensureSleepImage(): Promise<string> {
  return ensureBusyboxImage({ repo: 'service-foundry-test/busybox', cmd: ['/bin/busybox', 'sleep', '3600'] });
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
