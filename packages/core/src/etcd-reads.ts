import type { Etcd3, IKeyValue } from 'etcd3';
import type { Logger } from 'pino';
import { BadRecordError } from './errors.js';
import { createLogger } from './logger.js';
import { decodeRecord, type RecordCodec } from './records/codec.js';

/**
 * Every read of a record from etcd: the value is decoded and checked by the record's codec
 * (records/), so nothing downstream ever sees a value of the wrong shape.
 */

/** A record read from etcd with the revisions that transactions compare against. */
export interface Versioned<T> {
  key: string;
  value: T;
  modRevision: string;
  createRevision: string;
  lease: string;
}

/** An etcd key-value decoded by `codec`. Throws BadRecordError when the value is malformed. */
export function decodeKeyValue<T>(codec: RecordCodec<T>, kv: IKeyValue): Versioned<T> {
  const key = kv.key.toString();
  return {
    key,
    value: decodeRecord(codec, key, kv.value),
    modRevision: kv.mod_revision,
    createRevision: kv.create_revision,
    lease: kv.lease,
  };
}

/**
 * Records in the order they were created, eldest first (create revisions are strings of
 * int64: compared as BigInt). Who leads among schedulers is the eldest live member.
 */
export function eldestFirst<T>(records: Iterable<Versioned<T>>): Versioned<T>[] {
  return [...records].sort((a, b) => {
    const left = BigInt(a.createRevision);
    const right = BigInt(b.createRevision);
    return left < right ? -1 : left > right ? 1 : 0;
  });
}

/** The record at `key`, undefined when absent. Throws BadRecordError when it is malformed. */
export async function readRecord<T>(
  client: Etcd3,
  codec: RecordCodec<T>,
  key: string,
): Promise<Versioned<T> | undefined> {
  const res = await client.get(key).exec();
  const kv = res.kvs[0];
  return kv ? decodeKeyValue(codec, kv) : undefined;
}

export interface PrefixSnapshot<T> {
  revision: string;
  /** The well-formed records, by key. */
  items: Map<string, Versioned<T>>;
  /** The malformed ones, skipped (and logged). */
  rejected: BadRecordError[];
}

let fallbackLog: Logger | undefined;

/** Where skipped records are logged when the caller gives no logger. */
function recordsLog(log: Logger | undefined): Logger {
  if (log) return log;
  fallbackLog ??= createLogger({ name: 'records' });
  return fallbackLog;
}

/** Logs a record that was skipped: which key, which record, which fields. */
export function logRejected(log: Logger | undefined, error: BadRecordError): void {
  recordsLog(log).warn({ key: error.key, record: error.record, problems: error.problems }, 'skipping malformed record');
}

/**
 * Decodes `kvs` with `codec`: the good ones keyed, the malformed ones logged and returned
 * apart. One bad record never hides the others.
 */
export function decodeKeyValues<T>(
  codec: RecordCodec<T>,
  kvs: readonly IKeyValue[],
  log?: Logger,
): { items: Map<string, Versioned<T>>; rejected: BadRecordError[] } {
  const items = new Map<string, Versioned<T>>();
  const rejected: BadRecordError[] = [];
  for (const kv of kvs) {
    try {
      const item = decodeKeyValue(codec, kv);
      items.set(item.key, item);
    } catch (error) {
      if (!(error instanceof BadRecordError)) throw error;
      logRejected(log, error);
      rejected.push(error);
    }
  }
  return { items, rejected };
}

/**
 * Every record under `prefix`, at one revision. Malformed records are skipped and logged
 * (to `log`, else a logger named `records`), never thrown: one bad value must not blind a
 * reader to the rest.
 */
export async function readPrefix<T>(
  client: Etcd3,
  codec: RecordCodec<T>,
  prefix: string,
  log?: Logger,
): Promise<PrefixSnapshot<T>> {
  const res = await client.getAll().prefix(prefix).exec();
  return { revision: res.header.revision, ...decodeKeyValues(codec, res.kvs, log) };
}

/** The values of `readPrefix`, in key order. */
export async function readRecords<T>(client: Etcd3, codec: RecordCodec<T>, prefix: string, log?: Logger): Promise<T[]> {
  return [...(await readPrefix(client, codec, prefix, log)).items.values()].map((item) => item.value);
}
