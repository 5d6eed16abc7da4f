import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import Docker from 'dockerode';
import { pack } from 'tar-stream';

/** The Docker Engine the tests run containers on: the agent's default socket, whatever DOCKER_HOST says. */
export const docker = new Docker({ socketPath: '/var/run/docker.sock' });

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
