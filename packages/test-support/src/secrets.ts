import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SecretBox } from '@service-foundry/core';

/**
 * The key the components under test seal and open secrets with. One file per machine,
 * made once and reused: every test file and every component it starts must agree on it.
 */
export const secretsKeyFile = await SecretBox.ensureKeyFile(join(tmpdir(), 'sf-test-secrets.key'));

/** Seals and opens records as the components under test do, for tests that read or write etcd directly. */
export const secretBox = await SecretBox.fromKeyFile(secretsKeyFile);
