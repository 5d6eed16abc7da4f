import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmod, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { suiteTempDir } from '@service-foundry/test-support';
import { InvalidConfigError, isSealedSecret, SecretBox, SecretBoxError } from '../src/index.js';

describe('SecretBox: credentials sealed before they enter etcd', () => {
  const dir = suiteTempDir('sf-secret-box');

  const box = new SecretBox(randomBytes(32));
  const key = '/sf/secrets/i1';

  it('opens what it sealed, and the sealed form shows nothing of the secret', () => {
    const sealed = box.sealJson({ adminPassword: 'hunter2-hunter2' }, key);
    assert.ok(isSealedSecret(sealed));
    assert.doesNotMatch(JSON.stringify(sealed), /hunter2/);
    assert.deepEqual(box.openJson(sealed, key), { adminPassword: 'hunter2-hunter2' });
    assert.notEqual(box.seal('same', key).iv, box.seal('same', key).iv, 'a fresh nonce every time');
  });

  it('refuses a sealed value moved under another key, altered, or sealed with another key', () => {
    const sealed = box.seal('secret', key);
    assert.throws(() => box.open(sealed, '/sf/secrets/i2'), SecretBoxError);
    const flipped = Buffer.from(sealed.ct, 'base64url');
    flipped[0] = (flipped[0] ?? 0) ^ 1;
    assert.throws(() => box.open({ ...sealed, ct: flipped.toString('base64url') }, key), SecretBoxError);
    assert.throws(() => box.open({ ...sealed, tag: Buffer.alloc(16).toString('base64url') }, key), SecretBoxError);
    const other = new SecretBox(randomBytes(32));
    assert.throws(() => other.open(sealed, key), /sealed with key/);
    assert.throws(() => box.open({ password: 'plain' } as never, key), /not a sealed secret/);
  });

  it('reads a key file only when no one else can: 0600, 32 bytes', async () => {
    const file = join(dir.path, 'secrets.key');
    await SecretBox.createKeyFile(file);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const a = await SecretBox.fromKeyFile(file);
    const b = await SecretBox.fromKeyFile(file);
    assert.equal(b.open(a.seal('x', key), key), 'x');
    await assert.rejects(SecretBox.createKeyFile(file), /EEXIST/, 'never overwrites a key');
    await chmod(file, 0o644);
    await assert.rejects(SecretBox.fromKeyFile(file), (error: unknown) => {
      assert.ok(error instanceof InvalidConfigError);
      assert.match(error.message, /readable by group or others/);
      return true;
    });
    const short = join(dir.path, 'short.key');
    await writeFile(short, `${randomBytes(16).toString('base64')}\n`, { mode: 0o600 });
    await assert.rejects(SecretBox.fromKeyFile(short), /must hold 32 bytes/);
    await assert.rejects(SecretBox.fromKeyFile(join(dir.path, 'absent.key')), /ENOENT/);
  });

  it('processes racing to create a key file all end up with the same whole key', async () => {
    const file = join(dir.path, 'shared.key');
    const paths = await Promise.all(Array.from({ length: 16 }, () => SecretBox.ensureKeyFile(file)));
    assert.ok(paths.every((p) => p === file));
    const boxes = await Promise.all(paths.map((p) => SecretBox.fromKeyFile(p)));
    assert.equal(new Set(boxes.map((b) => b.kid)).size, 1);
    assert.equal((await readFile(file, 'utf8')).trim().length, 44);
  });
});
