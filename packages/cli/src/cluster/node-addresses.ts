import { execFile } from 'node:child_process';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { NodeRuntimeError } from '../errors.js';

const run = promisify(execFile);

/**
 * The addresses of one cluster's isolated nodes, all derived from its block number K
 * (0–255), which one cluster on the machine holds at a time:
 *
 * | what                         | addresses                                    |
 * | ---------------------------- | -------------------------------------------- |
 * | node segment (the "switch")  | 10.213.K.0/24                                |
 * | this machine on the segment  | 10.213.K.254 (etcd, router, broker reach nodes here) |
 * | node i (1–20)                | 10.213.K.i                                   |
 * | node i's Docker bridge       | 10.(214 + ⌊(i−1)/4⌋).K.(64·((i−1) mod 4))/26 |
 *
 * A block is taken only when none of its six /24s overlaps a route or address of this
 * machine, so nothing a node does can reach anything but the namespaces the cluster made.
 */
export const maxIsolatedNodes = 20;
const blocks = 256;

export interface NodeAddressing {
  block: number;
  /** `10.213.K.0/24` */
  segment: string;
  prefixLength: 24;
  hostAddress: string;
  nodeAddress(index: number): string;
  /** The `--bip` of node `index`'s dockerd: its gateway address with the prefix. */
  bridge(index: number): string;
}

function checkIndex(index: number): void {
  if (!Number.isInteger(index) || index < 1 || index > maxIsolatedNodes) {
    throw new NodeRuntimeError(`node index ${index} is outside 1–${maxIsolatedNodes}`);
  }
}

export function nodeAddressing(block: number): NodeAddressing {
  if (!Number.isInteger(block) || block < 0 || block >= blocks) {
    throw new NodeRuntimeError(`address block ${block} is outside 0–${blocks - 1}`);
  }
  return {
    block,
    segment: `10.213.${block}.0/24`,
    prefixLength: 24,
    hostAddress: `10.213.${block}.254`,
    nodeAddress(index) {
      checkIndex(index);
      return `10.213.${block}.${index}`;
    },
    bridge(index) {
      checkIndex(index);
      const i = index - 1;
      return `10.${214 + Math.floor(i / 4)}.${block}.${64 * (i % 4) + 1}/26`;
    },
  };
}

/** The /24s a block occupies: the segment and the five holding its nodes' bridges. */
function blockNetworks(block: number): Array<[number, number]> {
  return [213, 214, 215, 216, 217, 218].map((second) => [toInt(`10.${second}.${block}.0`), 24]);
}

function toInt(address: string): number {
  const parts = address.split('.').map(Number);
  return (((parts[0] ?? 0) << 24) | ((parts[1] ?? 0) << 16) | ((parts[2] ?? 0) << 8) | (parts[3] ?? 0)) >>> 0;
}

function overlaps(a: [number, number], b: [number, number]): boolean {
  const bits = Math.min(a[1], b[1]);
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  return (a[0] & mask) >>> 0 === (b[0] & mask) >>> 0;
}

/** Every IPv4 network this machine routes or holds an address in (all tables). */
async function hostNetworks(): Promise<Array<[number, number]>> {
  const found: Array<[number, number]> = [];
  const texts = await Promise.all([
    run('ip', ['-4', '-o', 'route', 'show', 'table', 'all']).then((r) => r.stdout),
    run('ip', ['-4', '-o', 'addr', 'show']).then((r) => r.stdout),
  ]);
  for (const match of `${texts.join('\n')}\n`.matchAll(/(?:^|\s)(\d+\.\d+\.\d+\.\d+)(?:\/(\d+))?(?=\s)/gm)) {
    const address = match[1] as string;
    // A bare address in a route line (a gateway, `src`) is one host: /32.
    found.push([toInt(address), match[2] ? Number(match[2]) : 32]);
  }
  // `default` routes cover everything but say nothing about which addresses are in use.
  return found.filter(([, bits]) => bits > 0);
}

/** Where blocks are reserved: /run is per boot, so a reservation never outlives the machine's uptime. */
export const blockReservationDir = '/run/service-foundry/blocks';

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/**
 * A reservation whose owner (the `$SF_HOME` that took it) is gone was left by a run that
 * was killed before `sf down --purge`: free, unless its namespaces are still there.
 */
async function staleReservation(dir: string, block: number): Promise<boolean> {
  const owner = (await readFile(join(dir, 'owner'), 'utf8').catch(() => '')).trim();
  if (!owner || (await exists(owner))) return false;
  const prefix = (await readFile(join(dir, 'netns-prefix'), 'utf8').catch(() => '')).trim();
  const namespaces = await readdir('/run/netns').catch(() => [] as string[]);
  if (prefix && namespaces.some((n) => n.startsWith(prefix))) return false;
  return !(await hostNetworks()).some((net) => blockNetworks(block).some((b) => overlaps(net, b)));
}

/**
 * Takes a free block for the cluster whose state lives in `owner` (its `$SF_HOME`); the
 * reservation is a directory (mkdir is atomic), so two `sf up`s never share one.
 * `netnsPrefix` names the cluster's namespaces, which keep a block taken while they exist.
 */
export async function reserveBlock(owner: string, netnsPrefix: string): Promise<number> {
  await mkdir(blockReservationDir, { recursive: true, mode: 0o700 });
  const used = await hostNetworks();
  const first = Math.floor(Math.random() * blocks);
  for (let i = 0; i < blocks; i++) {
    const block = (first + i) % blocks;
    if (used.some((net) => blockNetworks(block).some((b) => overlaps(net, b)))) continue;
    const dir = join(blockReservationDir, String(block));
    try {
      await mkdir(dir, { mode: 0o700 });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      if (!(await staleReservation(dir, block))) continue;
      await rm(dir, { recursive: true, force: true });
      try {
        await mkdir(dir, { mode: 0o700 });
      } catch {
        continue;
      }
    }
    await writeFile(join(dir, 'owner'), `${owner}\n`, { mode: 0o600 });
    await writeFile(join(dir, 'netns-prefix'), `${netnsPrefix}\n`, { mode: 0o600 });
    return block;
  }
  throw new NodeRuntimeError(
    `no free address block for isolated nodes: every 10.213.K.0/24 (and its bridges in 10.214–218.K.0/24) overlaps a route of this machine or another cluster's (reservations in ${blockReservationDir})`,
  );
}

/** Confirms `owner` still holds `block` (re-taking it after a reboot emptied /run). */
export async function holdBlock(block: number, owner: string, netnsPrefix: string): Promise<void> {
  const dir = join(blockReservationDir, String(block));
  await mkdir(blockReservationDir, { recursive: true, mode: 0o700 });
  try {
    await mkdir(dir, { mode: 0o700 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    const current = (await readFile(join(dir, 'owner'), 'utf8').catch(() => '')).trim();
    if (current === owner) return;
    throw new NodeRuntimeError(
      `address block ${block} (10.213.${block}.0/24) is held by ${current || 'another cluster'}; this cluster cannot start its nodes there`,
    );
  }
  await writeFile(join(dir, 'owner'), `${owner}\n`, { mode: 0o600 });
  await writeFile(join(dir, 'netns-prefix'), `${netnsPrefix}\n`, { mode: 0o600 });
}

/** Gives the block back (`sf down --purge`). Only its owner's reservation is removed. */
export async function releaseBlock(block: number, owner: string): Promise<void> {
  const dir = join(blockReservationDir, String(block));
  const current = (await readFile(join(dir, 'owner'), 'utf8').catch(() => '')).trim();
  if (current === owner) await rm(dir, { recursive: true, force: true });
}
