import { type Etcd3, readJson, readPrefix, type Versioned } from './etcd.js';
import type { SealedSecret, SecretBox } from './secret-box.js';

/**
 * Records that hold credentials (instance secrets, bindings) are stored sealed whole: the
 * etcd value is a SealedSecret whose authenticated context is the record's own key, so a
 * value copied under another key, or altered, does not open.
 */

/** The etcd value for `record` stored at `key`. */
export function sealedValue(box: SecretBox, key: string, record: unknown): string {
  return JSON.stringify(box.sealJson(record, key));
}

function open<T>(box: SecretBox, item: Versioned<unknown>): Versioned<T> {
  return { ...item, value: box.openJson<T>(item.value as SealedSecret, item.key) };
}

/** Reads and opens one sealed record; throws SecretBoxError when it does not open. */
export async function readSealed<T>(client: Etcd3, box: SecretBox, key: string): Promise<Versioned<T> | undefined> {
  const item = await readJson<unknown>(client, key);
  return item ? open<T>(box, item) : undefined;
}

/** Every sealed record under `prefix`, opened. */
export async function readSealedPrefix<T>(client: Etcd3, box: SecretBox, prefix: string): Promise<Versioned<T>[]> {
  const snapshot = await readPrefix<unknown>(client, prefix);
  return [...snapshot.items.values()].map((item) => open<T>(box, item));
}
