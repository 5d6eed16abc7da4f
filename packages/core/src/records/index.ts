/**
 * Every etcd record: one module per record family, each exporting its TypeScript type,
 * its JSON schema and its codec. docs/keyspace.md says who writes and reads each key;
 * key names come only from the Keyspace class (keyspace.ts).
 *
 * API (all exported from `@service-foundry/core`):
 *
 * - `RecordCodec<T>` = `{ name, schema, parse(key, value: unknown): T }`; `parse` throws
 *   `BadRecordError` (code `SF_ERR_BAD_RECORD`, readonly `key`, `record`, `problems`: one
 *   line per field, starting with its JSON pointer, e.g. `/resources/cpuMillis must be >= 1`).
 * - Codecs: `nodeCodec`, `allocationCodec`, `instanceCodec`, `secretCodec`,
 *   `placementCodec`, `assignmentCodec` (also checks the record names its key's instance and
 *   ordinal, a primary has an epoch, a seed names a served volume), `statusCodec`,
 *   `primaryCodec`, `routeCodec` (checks its key's instance, tcp port, http hostname),
 *   `bindingCodec`, `eventCodec`, `nodeControlCodec`, `nodeFenceCodec`,
 *   `schedulingStatusCodec`, `transferStatusCodec`, `relocationCodec`, `switchoverCodec`, `backupCodec`,
 *   `schedulerMemberCodec`, `tombstoneCodec` (checks its key's instance). The fencing
 *   package defines its own (stored fence record, fence history, fence devices) the same way.
 * - Reads (etcd-reads.ts, prefix-mirror.ts, sealed-records.ts):
 *   `readRecord(client, codec, key)` → `Versioned<T> | undefined`, throws BadRecordError;
 *   `readPrefix(client, codec, prefix, log?)` → `{ revision, items, rejected }` and
 *   `readRecords(client, codec, prefix, log?)` → `T[]`: malformed records are skipped and
 *   logged, never thrown; `new PrefixMirror(client, codec, prefix, log)`: skips a malformed
 *   write (the key keeps its last good record), logs it and emits `rejected` with the
 *   BadRecordErrors; `readSealed(client, box, codec, key)`,
 *   `readSealedPrefix(client, box, codec, prefix, log?)` (the envelope is checked by
 *   `sealedEnvelopeCodec`, the opened record by `codec`); `decodeKeyValue(codec, kv)` and
 *   `decodeKeyValues(codec, kvs, log?)` for key-values of a transaction's response or a
 *   sorted/limited range; `decodeRecord(codec, key, raw)` for raw text.
 * - Shared enums, written once: `durabilities`, `localIos`, `fencingPolicies`,
 *   `replicaRoles`, `replicaStates`, `desiredReplicaStates`, `instancePhases`, … with their
 *   types; `sameIo(a, b)`.
 *
 * Schemas allow what the types allow and no more: an optional field may be absent, never
 * `null`. Every object allows fields it does not know (`additionalProperties: true`): a
 * newer writer may add fields, and an older reader must keep working. Nothing is coerced,
 * defaulted or stripped: a reader gets exactly what was written.
 */
export * from './backup.js';
export * from './binding.js';
export * from './codec.js';
export * from './event.js';
export * from './fence.js';
export * from './fence-check.js';
export * from './instance.js';
export * from './node.js';
export * from './node-control.js';
export * from './placement.js';
export * from './primary.js';
export * from './relocation.js';
export * from './route.js';
export * from './scheduler-member.js';
export * from './scheduling-status.js';
export * from './secret.js';
export * from './shared.js';
export * from './status.js';
export * from './switchover.js';
export * from './tombstone.js';
export * from './transfer.js';
