import { randomBytes } from 'node:crypto';
import { constants, createReadStream, createWriteStream } from 'node:fs';
import { access, mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { BootProcess } from '@service-foundry/fencing';
import Docker from 'dockerode';
import { NodeRuntimeError } from '../errors.js';

/** Where one isolated node's dockerd keeps its things. */
export interface EnginePaths {
  /** Images, containers and volumes: the node's "disk", kept across power cycles. */
  dataRoot: string;
  /** Runtime state (containerd, shims, netns files): lost with the power, as /run is. */
  execRoot: string;
  socket: string;
  /** dockerd's own pid file (in the exec root). */
  daemonPidFile: string;
  /** The engine's config file: the host's /etc/docker/daemon.json is none of the node's business. */
  configFile: string;
}

/** The PATH every node process gets (dockerd finds containerd, runc and docker-proxy on it). */
export function systemPath(): string {
  return ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'].join(':');
}

/** The absolute path of an executable on PATH (or the system directories), or undefined. */
export { mountsUnder, unmountUnder } from '@service-foundry/fencing';

/** The absolute path of an executable on PATH (or the system directories), or undefined. */
export async function whichBinary(name: string): Promise<string | undefined> {
  for (const dir of (process.env.PATH ?? systemPath()).split(':').concat(systemPath().split(':'))) {
    if (!dir) continue;
    const path = join(dir, name);
    if (
      await access(path, constants.X_OK).then(
        () => true,
        () => false,
      )
    )
      return path;
  }
  return undefined;
}

/**
 * The boot entry of a node's dockerd: its own data root, exec root, socket and pid file,
 * and its own bridge subnet (`--bip`), iptables on (the rules stay in the node's
 * namespace). Never `--bridge=none`: that would delete the host's docker0 were it ever
 * run outside a namespace.
 */
export function dockerdBootProcess(
  dockerd: string,
  paths: EnginePaths,
  bridge: string,
  pidFile: string,
  logFile: string,
): BootProcess {
  return {
    name: 'dockerd',
    argv: [
      dockerd,
      '--config-file',
      paths.configFile,
      '--data-root',
      paths.dataRoot,
      '--exec-root',
      paths.execRoot,
      '--host',
      `unix://${paths.socket}`,
      '--pidfile',
      paths.daemonPidFile,
      '--bip',
      bridge,
      '--iptables=true',
      '--ip-masq=true',
    ],
    env: { PATH: systemPath(), LANG: 'C.UTF-8' },
    pidFile,
    logFile,
    staleFiles: [paths.daemonPidFile, paths.socket],
    // containerd's pid file and sockets live here: after a power loss a reused pid would
    // make dockerd wait on a stranger.
    volatileDirs: [paths.execRoot],
    readyDockerSocket: paths.socket,
  };
}

/**
 * Where image archives (`docker save`) wait to be loaded into node engines: one file per
 * image id, shared by every cluster on this machine, so an image is saved once however
 * many nodes (and test clusters) load it. Files of images this machine no longer has are
 * removed when a new one is written.
 * @default '/var/cache/service-foundry/images'
 */
export const imageArchiveDir = '/var/cache/service-foundry/images';

/** Archives being written by this process, by image: nodes powered on together wait for one. */
const writing = new Map<string, Promise<string>>();

function imageArchive(host: Docker, image: string): Promise<string> {
  let pending = writing.get(image);
  if (!pending) {
    pending = writeImageArchive(host, image).finally(() => writing.delete(image));
    writing.set(image, pending);
  }
  return pending;
}

async function writeImageArchive(host: Docker, image: string): Promise<string> {
  let id: string;
  try {
    id = (await host.getImage(image).inspect()).Id.replace(/^sha256:/, '');
  } catch (error) {
    throw new NodeRuntimeError(`image ${image} is not on this machine's Docker Engine: run \`sf images build\``, {
      cause: error,
    });
  }
  const file = join(imageArchiveDir, `${id}.tar`);
  if (await exists(file)) return file;
  await mkdir(imageArchiveDir, { recursive: true, mode: 0o700 });
  // Written aside and renamed: a reader never sees half an archive, and two writers don't mix.
  const partial = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`;
  try {
    await pipeline(await host.getImage(image).get(), createWriteStream(partial, { mode: 0o600 }));
    await rename(partial, file);
  } finally {
    await rm(partial, { force: true });
  }
  const current = new Set((await host.listImages()).map((i) => `${i.Id.replace(/^sha256:/, '')}.tar`));
  for (const name of await readdir(imageArchiveDir)) {
    if (name.endsWith('.tar') && !current.has(name)) await rm(join(imageArchiveDir, name), { force: true });
  }
  return file;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/**
 * Copies images from this machine's Docker Engine to a node's, once per tag: a node that
 * has the tag keeps it (`docker save | docker load` through the API, no registry).
 */
export async function copyImages(socket: string, images: readonly string[]): Promise<string[]> {
  const host = new Docker({ socketPath: process.env.DOCKER_SOCKET ?? '/var/run/docker.sock' });
  const node = new Docker({ socketPath: socket });
  const copied: string[] = [];
  for (const image of images) {
    const present = await node
      .getImage(image)
      .inspect()
      .then(
        () => true,
        () => false,
      );
    if (present) continue;
    const archive = await imageArchive(host, image);
    const progress = await node.loadImage(createReadStream(archive), { quiet: true });
    await new Promise<void>((resolve, reject) => {
      node.modem.followProgress(progress, (error: Error | null) => (error ? reject(error) : resolve()));
    });
    await node.getImage(image).inspect();
    copied.push(image);
  }
  return copied;
}
