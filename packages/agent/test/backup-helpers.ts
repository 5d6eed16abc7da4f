import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { docker } from '@service-foundry/test-support/docker';
import { labelKeys, replicaResourceName } from '../src/container-spec.js';

export interface TestReplica {
  /** Container and volume name, as the agent names them. */
  name: string;
  containerId: string;
  /** Host directory of the volume. */
  mountpoint: string;
  remove(): Promise<void>;
}

/**
 * A running container and its volume named and labelled like the agent's replica
 * `<instanceId>/<ordinal>` on `node`, so a backup runner finds it as it would in production.
 */
export async function startTestReplica(options: {
  clusterId: string;
  node: string;
  instanceId: string;
  ordinal: number;
  image: string;
  volumePath: string;
}): Promise<TestReplica> {
  const { clusterId, node, instanceId, ordinal, image, volumePath } = options;
  const name = replicaResourceName(node, { instanceId, ordinal });
  const labels = {
    [labelKeys.cluster]: clusterId,
    [labelKeys.node]: node,
    [labelKeys.instance]: instanceId,
    [labelKeys.ordinal]: String(ordinal),
  };
  const remove = async () => {
    await docker
      .getContainer(name)
      .remove({ force: true })
      .catch(() => undefined);
    await docker
      .getVolume(name)
      .remove()
      .catch(() => undefined);
  };
  try {
    await docker.createVolume({ Name: name, Labels: labels });
    const container = await docker.createContainer({
      name,
      Image: image,
      Labels: labels,
      HostConfig: { Mounts: [{ Type: 'volume', Source: name, Target: volumePath }], RestartPolicy: { Name: 'no' } },
    });
    await container.start();
    const volume = await docker.getVolume(name).inspect();
    return { name, containerId: container.id, mountpoint: volume.Mountpoint, remove };
  } catch (error) {
    await remove();
    throw error;
  }
}

/** Writes files (relative path → content) under `root`, creating folders. */
export async function writeTree(root: string, files: Record<string, Buffer | string>): Promise<void> {
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), content);
  }
}

/** Every regular file under `root` (relative path → content); folders are implied by the paths. */
export async function readTree(root: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  for (const entry of await readdir(root, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const full = join(entry.parentPath, entry.name);
    files.set(full.slice(root.length + 1), await readFile(full));
  }
  return files;
}

/** Names in a folder; none when it does not exist. */
export async function listOrNothing(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch {
    return [];
  }
}
