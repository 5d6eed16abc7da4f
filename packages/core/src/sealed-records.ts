import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import { BadRecordError, SecretBoxError } from './errors.js';
import { logRejected, readPrefix, readRecord, type Versioned } from './etcd-reads.js';
import { decodeRecord, type RecordCodec } from './records/codec.js';
import { isSealedSecret, type SealedSecret, type SecretBox } from './secret-box.js';

/**
 * Records that hold credentials (instance secrets, bindings, fence devices) are stored
 * sealed whole: the etcd value is a SealedSecret whose authenticated context is the
 * record's own key, so a value copied under another key, or altered, does not open. The
 * opened text is then read by the record's codec like any other record.
 */

/** The stored envelope. A value that is not one throws SecretBoxError, as opening it would. */
export const sealedEnvelopeCodec: RecordCodec<SealedSecret> = {
  name: 'sealed record',
  schema: {
    type: 'object',
    required: ['sealed', 'kid', 'iv', 'ct', 'tag'],
    properties: {
      sealed: { const: 'sf-aead-1' },
      kid: { type: 'string' },
      iv: { type: 'string' },
      ct: { type: 'string' },
      tag: { type: 'string' },
    },
  },
  parse(key, value) {
    if (!isSealedSecret(value)) throw new SecretBoxError(key, 'not a sealed secret');
    return value;
  },
};

/** The etcd value for `record` stored at `key`. */
export function sealedValue(box: SecretBox, key: string, record: unknown): string {
  return JSON.stringify(box.sealJson(record, key));
}

/** Opens a sealed record read elsewhere (e.g. a PrefixMirror of `sealedEnvelopeCodec`). */
export function openSealed<T>(box: SecretBox, codec: RecordCodec<T>, item: Versioned<SealedSecret>): Versioned<T> {
  return { ...item, value: decodeRecord(codec, item.key, box.open(item.value, item.key)) };
}

/**
 * Reads and opens one sealed record. Throws SecretBoxError when it does not open,
 * BadRecordError when what it holds is malformed.
 */
export async function readSealed<T>(
  client: Etcd3,
  box: SecretBox,
  codec: RecordCodec<T>,
  key: string,
): Promise<Versioned<T> | undefined> {
  const item = await readRecord(client, sealedEnvelopeCodec, key);
  return item ? openSealed(box, codec, item) : undefined;
}

/**
 * Every sealed record under `prefix`, opened. A value that does not open throws
 * SecretBoxError (an altered or moved secret is an alarm, not noise); one that opens but is
 * malformed is skipped and logged like any malformed record.
 */
export async function readSealedPrefix<T>(
  client: Etcd3,
  box: SecretBox,
  codec: RecordCodec<T>,
  prefix: string,
  log?: Logger,
): Promise<Versioned<T>[]> {
  const snapshot = await readPrefix(client, sealedEnvelopeCodec, prefix, log);
  const opened: Versioned<T>[] = [];
  for (const item of snapshot.items.values()) {
    try {
      opened.push(openSealed(box, codec, item));
    } catch (error) {
      if (!(error instanceof BadRecordError)) throw error;
      logRejected(log, error);
    }
  }
  return opened;
}
