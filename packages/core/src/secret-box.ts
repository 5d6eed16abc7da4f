import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { link, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { InvalidConfigError, SecretBoxError } from './errors.js';

/**
 * A secret as it is stored in etcd: AES-256-GCM, a fresh 96-bit nonce per seal, and the
 * etcd key (or another context string) as additional authenticated data, so a sealed value
 * copied under another key does not open. An etcd snapshot or a read-only leak of the
 * keyspace yields no credential without the key file.
 */
export interface SealedSecret {
  /** Format marker: `sf-aead-1` (AES-256-GCM). */
  sealed: 'sf-aead-1';
  /** Which key sealed it: the first 8 bytes of SHA-256 of the key, hex. */
  kid: string;
  /** base64url: nonce, ciphertext, tag. */
  iv: string;
  ct: string;
  tag: string;
}

const keyBytes = 32;
const format = 'sf-aead-1';

export function isSealedSecret(value: unknown): value is SealedSecret {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    v.sealed === format &&
    typeof v.kid === 'string' &&
    typeof v.iv === 'string' &&
    typeof v.ct === 'string' &&
    typeof v.tag === 'string'
  );
}

/** Seals and opens secrets with one symmetric key read from a file only its components may read. */
export class SecretBox {
  readonly kid: string;
  readonly #key: Buffer;

  constructor(key: Buffer) {
    if (key.length !== keyBytes) throw new TypeError(`a secret key is ${keyBytes} bytes, got ${key.length}`);
    this.#key = Buffer.from(key);
    this.kid = createHash('sha256').update(key).digest().subarray(0, 8).toString('hex');
  }

  /**
   * Reads a key file: 32 random bytes, base64 on one line. The file must not be readable by
   * group or others, so a mistake in deployment is an error, not a silent leak.
   */
  static async fromKeyFile(path: string): Promise<SecretBox> {
    const info = await stat(path).catch((error: NodeJS.ErrnoException) => {
      throw new InvalidConfigError('secrets key file', [`${path}: ${error.code ?? error.message}`]);
    });
    if ((info.mode & 0o077) !== 0) {
      throw new InvalidConfigError('secrets key file', [
        `${path} is readable by group or others (mode ${(info.mode & 0o777).toString(8)}); chmod 600 it`,
      ]);
    }
    const key = Buffer.from((await readFile(path, 'utf8')).trim(), 'base64');
    if (key.length !== keyBytes) {
      throw new InvalidConfigError('secrets key file', [`${path} must hold ${keyBytes} bytes, base64-encoded`]);
    }
    return new SecretBox(key);
  }

  /** Writes a new random key file (mode 0600); refuses to overwrite one. */
  static async createKeyFile(path: string): Promise<void> {
    await writeFile(path, `${randomBytes(keyBytes).toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
  }

  /**
   * Creates the key file unless it exists, atomically (written aside, then linked into
   * place), so processes racing to create it all end up with the same whole key.
   */
  static async ensureKeyFile(path: string): Promise<string> {
    const aside = `${path}.${process.pid}.${randomBytes(4).toString('hex')}`;
    await SecretBox.createKeyFile(aside);
    try {
      await link(aside, path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    } finally {
      await unlink(aside);
    }
    return path;
  }

  seal(plaintext: string, context: string): SealedSecret {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.#key, iv);
    cipher.setAAD(Buffer.from(context, 'utf8'));
    const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return {
      sealed: format,
      kid: this.kid,
      iv: iv.toString('base64url'),
      ct: ct.toString('base64url'),
      tag: cipher.getAuthTag().toString('base64url'),
    };
  }

  /** Opens a sealed secret; throws SecretBoxError when it was sealed with another key or context, or altered. */
  open(sealed: SealedSecret, context: string): string {
    if (!isSealedSecret(sealed)) throw new SecretBoxError(context, 'not a sealed secret');
    if (sealed.kid !== this.kid)
      throw new SecretBoxError(context, `sealed with key ${sealed.kid}, this is ${this.kid}`);
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#key, Buffer.from(sealed.iv, 'base64url'));
      decipher.setAAD(Buffer.from(context, 'utf8'));
      decipher.setAuthTag(Buffer.from(sealed.tag, 'base64url'));
      return Buffer.concat([decipher.update(Buffer.from(sealed.ct, 'base64url')), decipher.final()]).toString('utf8');
    } catch {
      throw new SecretBoxError(context, 'authentication failed (altered, or sealed for another key)');
    }
  }

  /** JSON convenience: seal a whole record. */
  sealJson(value: unknown, context: string): SealedSecret {
    return this.seal(JSON.stringify(value), context);
  }

  /** The opened JSON value, unchecked: records read it through their codec (sealed-records.ts). */
  openJson(sealed: SealedSecret, context: string): unknown {
    return JSON.parse(this.open(sealed, context));
  }
}
