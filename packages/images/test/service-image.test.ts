import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { type CatalogEntry, DockerError } from '@service-foundry/core';
import { makeTempDir, uniqueId } from '@service-foundry/test-support';
import { docker } from '@service-foundry/test-support/docker';
import { ensureServiceImage, imageId, imageSize } from '../src/index.js';

/** Small throwaway entries built FROM the real base image (built first if missing). */

async function entryWithDockerfile(
  t: { after: (fn: () => Promise<void>) => void },
  dockerfile: string,
): Promise<CatalogEntry> {
  const dir = await makeTempDir('sf-images-entry');
  const tag = `service-foundry-test/${uniqueId('images')}:1`;
  t.after(async () => {
    await docker
      .getImage(tag)
      .remove({ force: true })
      .catch(() => {});
    await dir.remove();
  });
  await mkdir(join(dir.path, 'image'));
  await writeFile(join(dir.path, 'image', 'Dockerfile'), dockerfile);
  return {
    osb: { id: 'test', name: 'images-test', description: 'test', bindable: false, plans: [] },
    plans: {},
    runtime: {
      image: tag,
      port: 1,
      protocol: 'tcp',
      volumePath: '/data',
      env: {},
      adminUser: 'admin',
      adminPasswordFileEnv: 'ADMIN_PASSWORD_FILE',
      secretFiles: { dir: '/run/sf-secrets', uid: 0, gid: 0 },
      readiness: { exec: ['true'], timeoutSeconds: 1 },
    },
    binding: { driver: 'postgres', database: 'x', create: [], drop: [], uriScheme: 'x' },
    image: { context: 'image', tag },
    dir: dir.path,
  };
}

test('a failing RUN step rejects with a DockerError naming the tag and the step', {
  timeout: 10 * 60_000,
}, async (t) => {
  const entry = await entryWithDockerfile(t, 'ARG BASE_IMAGE\nFROM $BASE_IMAGE\nRUN echo about to fail && exit 3\n');
  const lines: string[] = [];
  await assert.rejects(ensureServiceImage(entry, { docker, onProgress: (line) => lines.push(line) }), (error) => {
    assert.ok(error instanceof DockerError);
    assert.equal(error.code, 'SF_ERR_DOCKER');
    assert.match(error.message, new RegExp(`building ${entry.image.tag} failed: .*returned a non-zero code: 3`));
    return true;
  });
  assert.ok(
    lines.some((line) => line.includes('about to fail')),
    'build output reaches onProgress',
  );
  assert.equal(await imageSize(docker, entry.image.tag), undefined);
});

test('a service image is built once, then reused until forced', { timeout: 10 * 60_000 }, async (t) => {
  const entry = await entryWithDockerfile(t, 'ARG BASE_IMAGE\nFROM $BASE_IMAGE\nRUN echo built > /built\n');
  const first = await ensureServiceImage(entry, { docker, onProgress: () => {} });
  assert.equal(first.built, true);
  assert.ok(first.sizeBytes > 0);
  const second = await ensureServiceImage(entry, { docker, onProgress: () => {} });
  assert.deepEqual([second.built, second.sizeBytes], [false, first.sizeBytes]);
  const forced = await ensureServiceImage(entry, { docker, force: true, onProgress: () => {} });
  assert.equal(forced.built, true);

  // A changed context rebuilt with force replaces the image; the old one is removed.
  const oldId = await imageId(docker, entry.image.tag);
  await writeFile(
    join(entry.dir, 'image', 'Dockerfile'),
    'ARG BASE_IMAGE\nFROM $BASE_IMAGE\nRUN echo changed > /built\n',
  );
  await ensureServiceImage(entry, { docker, force: true, onProgress: () => {} });
  const newId = await imageId(docker, entry.image.tag);
  assert.ok(oldId && newId && oldId !== newId);
  assert.equal(await imageSize(docker, oldId), undefined);
});

test('bad options and catalog entries are refused before anything is built', async (t) => {
  const entry = await entryWithDockerfile(t, 'FROM scratch\n');
  await assert.rejects(ensureServiceImage(entry, { docker, baseTag: 'Not A Tag' }), {
    name: 'InvalidConfigError',
    message: /baseTag/,
  });
  await assert.rejects(ensureServiceImage({ ...entry, image: { ...entry.image, context: '../..' } }, { docker }), {
    name: 'CatalogError',
    message: /leaves/,
  });
  await assert.rejects(ensureServiceImage({ ...entry, image: { ...entry.image, tag: 'other:1' } }, { docker }), {
    name: 'CatalogError',
    message: /differs from runtime.image/,
  });
});
