import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import Docker from 'dockerode';
import { pack } from 'tar-stream';

const hostSocket = '/var/run/docker.sock';

/** This machine's Docker Engine: the agent's default socket, whatever DOCKER_HOST says. */
export const hostDocker = new Docker({ socketPath: hostSocket });

/** The engines of isolated nodes of the clusters this process started, by socket. */
const nodeEngines = new Map<string, Docker>();
/** Which engine listed a container (by id) or a volume (by name). */
const owners = new Map<string, Docker>();

/**
 * Adds the Docker Engines of a cluster's isolated nodes to {@link docker}; the function
 * returned removes them again (when the cluster is destroyed).
 */
export function registerNodeEngines(sockets: readonly string[]): () => void {
  for (const socket of sockets) nodeEngines.set(socket, new Docker({ socketPath: socket }));
  return () => {
    for (const socket of sockets) {
      const engine = nodeEngines.get(socket);
      nodeEngines.delete(socket);
      for (const [key, owner] of owners) if (owner === engine) owners.delete(key);
    }
  };
}

/** The machine's engine and those of the isolated nodes of the clusters this process started. */
export function everyEngine(): Docker[] {
  return [hostDocker, ...nodeEngines.values()];
}

// biome-ignore lint/suspicious/noExplicitAny: dockerode's own callback type
type Callback<T> = (error?: any, result?: T) => void;
type VolumeList = { Volumes: Docker.VolumeInspectInfo[]; Warnings: string[] };

/** A node engine whose socket does not answer: its node is powered off, and runs nothing. */
function engineDown(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ECONNREFUSED' || code === 'ENOENT';
}

/**
 * Every engine a test may find a cluster's containers on, seen as one: this machine's and
 * those of the isolated nodes registered with {@link registerNodeEngines}. Container and
 * volume lists merge what each engine answers (a node engine that does not answer — its
 * node is powered off — contributes nothing); a container or volume handle goes to the
 * engine that listed it, anything else (images, names never listed) to this machine's.
 */
class AllEngines extends Docker {
  constructor() {
    super({ socketPath: hostSocket });
  }

  #engines(): Docker[] {
    return [hostDocker, ...nodeEngines.values()];
  }

  // dockerode's callback forms are declared so the class stays a Docker; tests use promises.
  override listContainers(options: Docker.ContainerListOptions, callback: Callback<Docker.ContainerInfo[]>): void;
  override listContainers(callback: Callback<Docker.ContainerInfo[]>): void;
  override listContainers(options?: Docker.ContainerListOptions): Promise<Docker.ContainerInfo[]>;
  override listContainers(options?: unknown, callback?: unknown): Promise<Docker.ContainerInfo[]> | undefined {
    if (typeof options === 'function' || callback !== undefined) throw new Error('use the promise form');
    return this.#containers((options ?? {}) as Docker.ContainerListOptions);
  }

  async #containers(options: Docker.ContainerListOptions): Promise<Docker.ContainerInfo[]> {
    const all: Docker.ContainerInfo[] = [];
    for (const engine of this.#engines()) {
      let list: Docker.ContainerInfo[];
      try {
        list = await engine.listContainers(options);
      } catch (error) {
        if (engine !== hostDocker && engineDown(error)) continue;
        throw error;
      }
      for (const c of list) owners.set(c.Id, engine);
      all.push(...list);
    }
    return all;
  }

  override listVolumes(options: Docker.VolumeListOptions, callback: Callback<VolumeList>): void;
  override listVolumes(callback: Callback<VolumeList>): void;
  override listVolumes(options?: Docker.VolumeListOptions): Promise<VolumeList>;
  override listVolumes(options?: unknown, callback?: unknown): Promise<VolumeList> | undefined {
    if (typeof options === 'function' || callback !== undefined) throw new Error('use the promise form');
    return this.#volumes((options ?? {}) as Docker.VolumeListOptions);
  }

  async #volumes(options: Docker.VolumeListOptions): Promise<VolumeList> {
    const merged: VolumeList = { Volumes: [], Warnings: [] };
    for (const engine of this.#engines()) {
      let list: VolumeList;
      try {
        list = await engine.listVolumes(options);
      } catch (error) {
        if (engine !== hostDocker && engineDown(error)) continue;
        throw error;
      }
      for (const v of list.Volumes ?? []) owners.set(`volume:${v.Name}`, engine);
      merged.Volumes.push(...(list.Volumes ?? []));
    }
    return merged;
  }

  override getContainer(id: string): Docker.Container {
    return (owners.get(id) ?? hostDocker).getContainer(id);
  }

  override getVolume(name: string): Docker.Volume {
    return (owners.get(`volume:${name}`) ?? hostDocker).getVolume(name);
  }
}

/**
 * The Docker Engine(s) the tests look at: this machine's, plus the isolated nodes' of the
 * clusters this process started (see {@link AllEngines}).
 */
export const docker: Docker = new AllEngines();

export interface BusyboxImageSpec {
  /** Repository; the tag is a hash of the content and command, so a changed image gets a new tag. */
  repo: string;
  cmd: string[];
  /** Served as /www/index.html. @default none */
  page?: string;
  /** busybox applets linked into /bin. @default none */
  applets?: string[];
  /** Extra files, e.g. a script. @default none */
  files?: Array<{ name: string; mode: number; body: string }>;
}

async function busyboxRootfs(spec: BusyboxImageSpec): Promise<Buffer> {
  const busybox = await readFile('/bin/busybox');
  const archive = pack();
  const mtime = new Date(0);
  const chunks: Buffer[] = [];
  archive.on('data', (chunk: unknown) => chunks.push(chunk as Buffer));
  const done = new Promise<void>((resolve, reject) => {
    archive.on('end', resolve);
    archive.on('error', reject);
  });
  for (const dir of ['bin', 'etc', 'www', 'tmp', 'data']) {
    archive.entry({ name: `${dir}/`, type: 'directory', mode: dir === 'tmp' ? 0o1777 : 0o755, mtime });
  }
  archive.entry({ name: 'bin/busybox', mode: 0o755, mtime }, busybox);
  for (const applet of spec.applets ?? []) {
    archive.entry({ name: `bin/${applet}`, type: 'symlink', linkname: 'busybox', mtime });
  }
  for (const file of spec.files ?? []) archive.entry({ name: file.name, mode: file.mode, mtime }, file.body);
  archive.entry({ name: 'etc/passwd', mode: 0o644, mtime }, 'root:x:0:0:root:/root:/bin/sh\n');
  if (spec.page !== undefined) archive.entry({ name: 'www/index.html', mode: 0o644, mtime }, spec.page);
  archive.finalize();
  await done;
  return Buffer.concat(chunks);
}

/**
 * A tiny image of the host's busybox-static made with `docker import`, so tests need no
 * registry and no service image. Tagged by content hash and reused.
 */
export async function ensureBusyboxImage(spec: BusyboxImageSpec): Promise<string> {
  const tar = await busyboxRootfs(spec);
  const hash = createHash('sha256').update(tar).update(JSON.stringify(spec.cmd)).digest('hex').slice(0, 16);
  const image = `${spec.repo}:${hash}`;
  try {
    await docker.getImage(image).inspect();
    return image;
  } catch {
    // Not imported yet.
  }
  const progress = await docker.importImage(Readable.from([tar]), {
    repo: spec.repo,
    tag: hash,
    changes: [`CMD ${JSON.stringify(spec.cmd)}`],
  } as object);
  await new Promise<void>((resolve, reject) => {
    docker.modem.followProgress(progress, (error) => (error ? reject(error) : resolve()));
  });
  await docker.getImage(image).inspect();
  return image;
}

export async function containerState(name: string): Promise<Docker.ContainerInspectInfo | undefined> {
  try {
    return await docker.getContainer(name).inspect();
  } catch {
    return undefined;
  }
}

export async function volumeExists(name: string): Promise<boolean> {
  try {
    await docker.getVolume(name).inspect();
    return true;
  } catch {
    return false;
  }
}

/** Removes a container (running or not); one already gone is fine. */
export async function removeContainer(id: string): Promise<void> {
  await docker
    .getContainer(id)
    .remove({ force: true })
    .catch(() => undefined);
}

function labelled(label: string): string {
  return JSON.stringify({ label: [label] });
}

/** Every container (running or not) of a service instance, found by the platform's labels. */
export function containersOf(instanceId: string): Promise<Docker.ContainerInfo[]> {
  return docker.listContainers({ all: true, filters: labelled(`sf.instance=${instanceId}`) });
}

/** The names of a service instance's volumes. */
export async function volumesOf(instanceId: string): Promise<string[]> {
  const { Volumes } = await docker.listVolumes({ filters: labelled(`sf.instance=${instanceId}`) });
  return (Volumes ?? []).map((v) => v.Name);
}

/** Removes every container and volume labelled with a test's cluster id. */
export async function removeClusterResources(clusterId: string): Promise<void> {
  const filters = labelled(`sf.cluster=${clusterId}`);
  for (const c of await docker.listContainers({ all: true, filters })) await removeContainer(c.Id);
  const { Volumes } = await docker.listVolumes({ filters });
  for (const v of Volumes ?? []) {
    await docker
      .getVolume(v.Name)
      .remove()
      .catch(() => undefined);
  }
}
