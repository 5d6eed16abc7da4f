import { createLogger, DockerError } from '@service-foundry/core';
import Dockerode from 'dockerode';
import type { ImageBuildConfig, ImageBuildHandles } from './config.js';

/** What `ensure*Image` did for one tag. */
export interface ImageResult {
  tag: string;
  /** Size of the image as Docker reports it (all layers). */
  sizeBytes: number;
  /** False when the tag already existed and nothing was built. */
  built: boolean;
  /** Wall time of the call, including the check. */
  seconds: number;
}

export function dockerClient(config: Readonly<ImageBuildConfig>, handles: ImageBuildHandles): Dockerode {
  return handles.docker ?? new Dockerode({ socketPath: config.dockerSocket });
}

let defaultLogger: ReturnType<typeof createLogger> | undefined;

export function progressSink(handles: ImageBuildHandles): (line: string) => void {
  if (handles.onProgress) return handles.onProgress;
  return (line) => {
    defaultLogger ??= createLogger({ name: 'images' });
    defaultLogger.info(line);
  };
}

async function inspectImage(docker: Dockerode, tag: string): Promise<Dockerode.ImageInspectInfo | undefined> {
  try {
    return await docker.getImage(tag).inspect();
  } catch (error) {
    if ((error as { statusCode?: number }).statusCode === 404) return undefined;
    throw new DockerError(`cannot inspect image ${tag}: ${(error as Error).message}`, { cause: error });
  }
}

/** The image's size in bytes, or undefined when the tag does not exist. */
export async function imageSize(docker: Dockerode, tag: string): Promise<number | undefined> {
  return (await inspectImage(docker, tag))?.Size;
}

/** The image id the tag names, or undefined when the tag does not exist. */
export async function imageId(docker: Dockerode, tag: string): Promise<string | undefined> {
  return (await inspectImage(docker, tag))?.Id;
}

/** Seconds since `startedMs`, to one decimal. */
export function secondsSince(startedMs: number): number {
  return Math.round((Date.now() - startedMs) / 100) / 10;
}

/** "82.4 MB", for progress lines. */
export function formatSize(bytes: number): string {
  return `${(bytes / 1_000_000).toFixed(1)} MB`;
}
