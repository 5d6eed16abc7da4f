import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { configCompiler, InvalidConfigError } from '@service-foundry/core';

/** Where `sf up` keeps its state and the CLI its target: `$SF_HOME`, else `./.sf`. */
export function stateDir(): string {
  return resolve(process.env.SF_HOME ?? '.sf');
}

/** The broker the CLI talks to; written by `sf up` or `sf target`. */
export interface Target {
  /** Broker base URL. */
  url: string;
  /**
   * Other brokers of the same platform, tried in order when `url` refuses connections (a
   * crashed broker its supervisor is restarting). `sf up` lists its other brokers here.
   * @default undefined
   */
  fallbackUrls?: string[];
  username: string;
  password: string;
}

const compileTarget = configCompiler<Target>('CLI target', {
  type: 'object',
  additionalProperties: false,
  required: ['url', 'username', 'password'],
  properties: {
    url: { type: 'string', pattern: '^https?://' },
    fallbackUrls: {
      type: 'array',
      maxItems: 8,
      items: { type: 'string', pattern: '^https?://' },
      nullable: true,
    },
    username: { type: 'string', minLength: 1 },
    password: { type: 'string', minLength: 1 },
  },
});

function targetFile(): string {
  return join(stateDir(), 'cli.json');
}

/**
 * Reads the target; `SF_BROKER_URL`/`SF_BROKER_USERNAME` override it. The password only
 * ever comes from the file (0600): environment variables are readable by other processes.
 */
export async function loadTarget(): Promise<Readonly<Target>> {
  let stored: Partial<Target> = {};
  try {
    stored = JSON.parse(await readFile(targetFile(), 'utf8')) as Partial<Target>;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new InvalidConfigError(targetFile(), [(error as Error).message]);
    }
  }
  if (process.env.SF_BROKER_URL) delete stored.fallbackUrls; // they belong to the stored broker's platform
  const merged = {
    ...stored,
    ...(process.env.SF_BROKER_URL ? { url: process.env.SF_BROKER_URL } : {}),
    ...(process.env.SF_BROKER_USERNAME ? { username: process.env.SF_BROKER_USERNAME } : {}),
  };
  if (!merged.url) {
    throw new InvalidConfigError('CLI target', [
      `no broker targeted: run \`sf up\` or \`sf target URL -u USER --password-stdin\``,
    ]);
  }
  return compileTarget(merged);
}

export async function saveTarget(target: Target): Promise<void> {
  const valid = compileTarget(target);
  await mkdir(dirname(targetFile()), { recursive: true, mode: 0o700 });
  await writeFile(targetFile(), `${JSON.stringify(valid, null, 2)}\n`, { mode: 0o600 });
}
