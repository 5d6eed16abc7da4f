import { BadRecordError, decodeKeyValue, logRejected, type RecordCodec, type Versioned } from '@service-foundry/core';
import type { Etcd3, ICompare, IKeyValue, IRequestOp, IResponseOp, ITxnRequest, ITxnResponse } from 'etcd3';

/**
 * Raw etcd transaction pieces. The fluent builder of the etcd3 client cannot nest
 * transactions; etcd (≥ 3.3) can, and nesting is what lets one request carry many
 * independent per-node transactions: each nested transaction is judged on its own
 * comparisons, and all of them are judged on the store as it was before the request.
 */

const bytes = (s: string) => Buffer.from(s);

/** Revision of a key as seen by a decision; '0' means "the key did not exist". */
export type SeenRevision = string;

export const op = {
  put(key: string, value: string, lease?: string): IRequestOp {
    return { request_put: { key: bytes(key), value: bytes(value), ...(lease ? { lease } : {}) } };
  },
  delete(key: string): IRequestOp {
    return { request_delete_range: { key: bytes(key) } };
  },
  get(key: string): IRequestOp {
    return { request_range: { key: bytes(key) } };
  },
  txn(compare: ICompare[], success: IRequestOp[], failure: IRequestOp[] = []): IRequestOp {
    return { request_txn: { compare, success, failure } };
  },
};

export const compare = {
  /** The key's mod revision is exactly `revision` ('0': the key is absent). */
  unchangedSince(key: string, revision: SeenRevision): ICompare {
    return { key: bytes(key), target: 'Mod', result: 'Equal', mod_revision: revision };
  },
  /** The key was created at `revision`: the same incarnation of a lock or lease-bound key. */
  createdAt(key: string, revision: SeenRevision): ICompare {
    return { key: bytes(key), target: 'Create', result: 'Equal', create_revision: revision };
  },
  absent(key: string): ICompare {
    return { key: bytes(key), target: 'Version', result: 'Equal', version: 0 };
  },
  present(key: string): ICompare {
    return { key: bytes(key), target: 'Version', result: 'Greater', version: 0 };
  },
};

export function commitTxn(client: Etcd3, request: ITxnRequest): Promise<ITxnResponse> {
  return client.kv.txn(request);
}

/**
 * The single key a nested range returned, read by `codec`; undefined when absent. A
 * malformed value is logged and read as absent: the commit then compares a revision that
 * no longer matches and fails, rather than deciding on a wrong value.
 */
export function decodeRange<T>(codec: RecordCodec<T>, response: IResponseOp | undefined): Versioned<T> | undefined {
  const kv: IKeyValue | undefined = response?.response_range?.kvs[0];
  if (!kv) return undefined;
  try {
    return decodeKeyValue(codec, kv);
  } catch (error) {
    if (!(error instanceof BadRecordError)) throw error;
    logRejected(undefined, error);
    return undefined;
  }
}

/** Size of a transaction for etcd's `--max-txn-ops` check: its longest list. */
export function opCount(t: { compare: unknown[]; success: unknown[]; failure: unknown[] }): number {
  return Math.max(t.compare.length, t.success.length, t.failure.length);
}
