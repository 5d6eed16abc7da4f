import { randomBytes } from 'node:crypto';
import { Keyspace } from '@service-foundry/core';

/** `<prefix>-<8 hex digits>`: a name no other test (file, run or machine user) picks. */
export function uniqueId(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

/** A keyspace under a root of its own, so tests sharing one etcd never see each other's keys. */
export function uniqueKeyspace(prefix = 'test'): Keyspace {
  return new Keyspace(`/${uniqueId(prefix)}`);
}
