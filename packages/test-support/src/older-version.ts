import {
  type Etcd3,
  type InstanceRecord,
  instanceCodec,
  json,
  type Keyspace,
  readRecord,
  readRecords,
  statusCodec,
  waitFor,
} from '@service-foundry/core';
import { everyEngine } from './docker.js';

/**
 * Upgrades need an instance on an older maintenance version. A catalog holds only the
 * current one, so tests and benches make one: the catalog's image under a second tag (on
 * every engine of this process's clusters), and the instance record rewritten as an older
 * provision would have left it, with an update operation in progress, which the controller
 * carries out by rolling every replica onto that tag: the same roll as an upgrade's.
 */

/** Tags `image` as `<image>-<suffix>` on every engine; `remove` untags it again (the image stays). */
export async function tagOlderImage(
  image: string,
  suffix: string,
): Promise<{ image: string; remove(): Promise<void> }> {
  const colon = image.lastIndexOf(':');
  const repo = image.slice(0, colon);
  const tag = `${image.slice(colon + 1)}-${suffix}`;
  const engines = everyEngine();
  await Promise.all(engines.map((engine) => engine.getImage(image).tag({ repo, tag })));
  const older = `${repo}:${tag}`;
  return {
    image: older,
    remove: async () => {
      await Promise.all(
        everyEngine().map((engine) =>
          engine
            .getImage(older)
            .remove({ noprune: true })
            .catch(() => undefined),
        ),
      );
    },
  };
}

/** Rewrites the instance as provisioned on `image` at `version`, with an update in progress. */
export async function pinOlderVersion(
  etcd: Etcd3,
  keys: Keyspace,
  instanceId: string,
  image: string,
  version: string,
): Promise<void> {
  const key = keys.instance(instanceId);
  const current = await readRecord(etcd, instanceCodec, key);
  if (!current) throw new Error(`instance ${instanceId} has no record`);
  if (current.value.phase !== 'ready' || current.value.operation.state === 'in progress') {
    throw new Error(
      `instance ${instanceId} is ${current.value.phase} (${current.value.operation.description}); wait until it is ready`,
    );
  }
  const older: InstanceRecord = {
    ...current.value,
    image,
    maintenanceVersion: version,
    operation: {
      id: `older-version-${Date.now()}`,
      type: 'update',
      state: 'in progress',
      description: `rolling onto ${image} (an older version, for a test)`,
      startedAt: new Date().toISOString(),
    },
  };
  const res = await etcd
    .if(key, 'Mod', '==', current.modRevision)
    .then(etcd.put(key).value(json(older)))
    .commit();
  if (!res.succeeded) throw new Error(`instance ${instanceId} changed while it was rewritten`);
}

/**
 * Waits until the instance's operation ended and `replicas` replicas run `image`; returns
 * the record then.
 */
export function rolledOnto(
  etcd: Etcd3,
  keys: Keyspace,
  instanceId: string,
  image: string,
  replicas: number,
  timeoutMs = 300_000,
): Promise<InstanceRecord> {
  return waitFor(
    async () => {
      const record = await readRecord(etcd, instanceCodec, keys.instance(instanceId));
      if (!record || record.value.operation.state === 'in progress') return undefined;
      const statuses = await readRecords(etcd, statusCodec, keys.instanceStatuses(instanceId));
      const onImage = statuses.filter((s) => s.state === 'running' && s.image === image);
      return onImage.length === replicas ? record.value : undefined;
    },
    { description: `${replicas} replica(s) running ${image}`, timeoutMs, intervalMs: 250 },
  );
}
