import { tmpdir } from 'node:os';
import { configCompiler } from '@service-foundry/core';
import type Dockerode from 'dockerode';

/** Settings of an image build, as they may appear in a JSON config or CLI flags. */
export interface ImageBuildOptions {
  /** Unix socket of the Docker Engine, used when no `docker` client is passed. @default '/var/run/docker.sock' */
  dockerSocket?: string;
  /** Tag of the debootstrap base image every service image builds `FROM`. @default 'service-foundry/debian-base:bookworm' */
  baseTag?: string;
  /** Debian suite of the base image. @default 'bookworm' */
  suite?: string;
  /**
   * Debian mirror for debootstrap (and baked into the base image's sources.list).
   * @default `SF_DEBIAN_MIRROR`, else the machine's apt sources (see findDebianMirror)
   */
  mirror?: string;
  /** Rebuild service images even when their tag exists (the build cache still applies). @default false */
  force?: boolean;
  /** Rebuild the base image even when its tag exists. @default false */
  rebuildBase?: boolean;
  /** Build service images without the layer cache (implies a fresh `apt-get install`). @default false */
  noCache?: boolean;
  /** Folder for the temporary debootstrap root (needs ~250 MB). @default os.tmpdir() */
  workDir?: string;
  /** The debootstrap executable. @default 'debootstrap' */
  debootstrapPath?: string;
  /** How long to wait for another process that is building the same tag. @default 900000 */
  lockTimeoutMs?: number;
}

/** Live objects that cannot sit in a config file. */
export interface ImageBuildHandles {
  /** Docker client to use. @default new Dockerode({ socketPath: dockerSocket }) */
  docker?: Dockerode;
  /**
   * Receives one human-readable progress line at a time (debootstrap phases, build
   * steps). A base image takes ~30–60 s, so callers should show these.
   * @default lines are logged at info level by a pino logger named `images`
   */
  onProgress?: (line: string) => void;
  /** Aborts debootstrap and the Docker requests. */
  signal?: AbortSignal;
}

export type EnsureImageOptions = ImageBuildOptions & ImageBuildHandles;

/** The validated, defaulted, frozen form of {@link ImageBuildOptions}. */
export interface ImageBuildConfig {
  dockerSocket: string;
  baseTag: string;
  suite: string;
  mirror?: string;
  force: boolean;
  rebuildBase: boolean;
  noCache: boolean;
  workDir: string;
  debootstrapPath: string;
  lockTimeoutMs: number;
}

type ImageBuildConfigSchema = Parameters<typeof configCompiler<ImageBuildConfig>>[1];

/** `repository[:tag]`, lower-case repository path as Docker requires. */
export const imageTagPattern =
  '^[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$';

const schema: ImageBuildConfigSchema = {
  type: 'object',
  required: [
    'dockerSocket',
    'baseTag',
    'suite',
    'force',
    'rebuildBase',
    'noCache',
    'workDir',
    'debootstrapPath',
    'lockTimeoutMs',
  ],
  additionalProperties: false,
  properties: {
    dockerSocket: { type: 'string', pattern: '^/', default: '/var/run/docker.sock' },
    baseTag: { type: 'string', pattern: imageTagPattern, default: 'service-foundry/debian-base:bookworm' },
    suite: { type: 'string', pattern: '^[a-z][a-z0-9-]*$', default: 'bookworm' },
    mirror: { type: 'string', pattern: '^https?://[^\\s]+$', nullable: true },
    force: { type: 'boolean', default: false },
    rebuildBase: { type: 'boolean', default: false },
    noCache: { type: 'boolean', default: false },
    workDir: { type: 'string', pattern: '^/', default: tmpdir() },
    debootstrapPath: { type: 'string', minLength: 1, default: 'debootstrap' },
    lockTimeoutMs: { type: 'integer', minimum: 1000, default: 900_000 },
  },
};

export const compileImageBuildConfig = configCompiler<ImageBuildConfig>('image build options', schema);

/** Splits the options into the frozen config and the live handles. */
export function splitImageOptions(options: EnsureImageOptions): {
  config: Readonly<ImageBuildConfig>;
  handles: ImageBuildHandles;
} {
  const { docker, onProgress, signal, ...settings } = options;
  const handles: ImageBuildHandles = {};
  if (docker) handles.docker = docker;
  if (onProgress) handles.onProgress = onProgress;
  if (signal) handles.signal = signal;
  return { config: compileImageBuildConfig(settings), handles };
}
