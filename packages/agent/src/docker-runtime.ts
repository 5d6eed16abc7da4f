import { PassThrough } from 'node:stream';
import { type ContainerLimits, DockerError } from '@service-foundry/core';
import Docker from 'dockerode';
import { type ContainerSpec, labelKeys } from './container-spec.js';
import { collectOutput, demultiplex } from './docker-streams.js';
import { type SecretFiles, secretFilesArchive } from './secret-files.js';

const mebibyte = 1024 * 1024;

/** What the agent needs to know about one container. */
export interface ContainerState {
  id: string;
  name: string;
  labels: Record<string, string>;
  running: boolean;
  /** Docker's state word: created, running, exited, … */
  status: string;
  exitCode: number;
  oomKilled: boolean;
  /** The image reference the container was created from (`Config.Image`). */
  image: string;
  /** Host ports by container port spec (`5432/tcp`). */
  publishedPorts: Record<string, number>;
  /** Volume names by mount point inside the container. */
  volumeMounts: Record<string, string>;
  /** The container's IPv4 address on its first Docker network, when it has one. */
  networkAddress?: string;
  /** Its main process's id on the host, while it runs. */
  pid?: number;
  /** Its CPU and memory limits; absent when Docker sets none (unlimited). */
  limits?: ContainerLimits;
}

export interface ContainerSummary {
  id: string;
  name: string;
  labels: Record<string, string>;
  running: boolean;
  /** Volume names by mount point inside the container. */
  volumeMounts: Record<string, string>;
}

export interface ExecResult {
  /** Null when the command did not finish before its deadline. */
  exitCode: number | null;
  /** stdout and stderr together, in order. */
  output: string;
  stdout: string;
  stderr: string;
}

/** A process started with `docker exec`, its stdin open: see command-session.ts. */
export interface AttachedExec {
  stdin: NodeJS.WritableStream;
  stdout: NodeJS.ReadableStream;
  stderr: NodeJS.ReadableStream;
  /** Closes the connection: the process reads end of input. */
  close(): void;
}

export interface VolumeSummary {
  name: string;
  labels: Record<string, string>;
}

interface DockerodeError {
  statusCode?: number;
  json?: { message?: string } | null;
  reason?: string;
  message?: string;
}

function statusOf(error: unknown): number | undefined {
  return (error as DockerodeError | undefined)?.statusCode;
}

function detailOf(error: unknown): string {
  const e = error as DockerodeError | undefined;
  return e?.json?.message ?? e?.reason ?? e?.message ?? String(error);
}

/**
 * The agent's only door to the Docker Engine. Every failure becomes a DockerError naming
 * the operation and the object, so a status message or log line says what went wrong where.
 * "Already done" answers (404 on delete, 304 on start/stop) count as success: every
 * operation here is safe to repeat.
 */
export class DockerRuntime {
  readonly #docker: Docker;

  constructor(readonly socketPath: string) {
    this.#docker = new Docker({ socketPath });
  }

  async #call<T>(
    operation: string,
    target: string,
    run: () => Promise<T>,
    accept: number[] = [],
  ): Promise<T | undefined> {
    try {
      return await run();
    } catch (error) {
      const status = statusOf(error);
      if (status !== undefined && accept.includes(status)) return undefined;
      const where = status === undefined ? ` (socket ${this.socketPath})` : ` (HTTP ${status})`;
      throw new DockerError(`docker ${operation} ${target} failed${where}: ${detailOf(error)}`, { cause: error });
    }
  }

  async ping(): Promise<void> {
    await this.#call('ping', 'engine', () => this.#docker.ping());
  }

  async hasImage(reference: string): Promise<boolean> {
    const info = await this.#call('inspect image', reference, () => this.#docker.getImage(reference).inspect(), [404]);
    return info !== undefined;
  }

  /** The container with this name or id, or undefined when there is none. */
  async inspectContainer(nameOrId: string): Promise<ContainerState | undefined> {
    const info = await this.#call(
      'inspect container',
      nameOrId,
      () => this.#docker.getContainer(nameOrId).inspect(),
      [404],
    );
    if (!info) return undefined;
    const publishedPorts: Record<string, number> = {};
    for (const [spec, bindings] of Object.entries(info.NetworkSettings?.Ports ?? {})) {
      const hostPort = Number(bindings?.[0]?.HostPort);
      if (Number.isInteger(hostPort) && hostPort > 0) publishedPorts[spec] = hostPort;
    }
    const volumeMounts: Record<string, string> = {};
    for (const mount of info.Mounts ?? []) {
      if (mount.Type === 'volume' && mount.Name) volumeMounts[mount.Destination] = mount.Name;
    }
    const memory = info.HostConfig?.Memory ?? 0;
    const nanoCpus = info.HostConfig?.NanoCpus ?? 0;
    const limits =
      memory > 0 && nanoCpus > 0
        ? { cpuMillis: Math.round(nanoCpus / 1_000_000), memoryMb: Math.round(memory / mebibyte) }
        : undefined;
    const firstNetwork = Object.values(info.NetworkSettings?.Networks ?? {})[0];
    const networkAddress = firstNetwork?.IPAddress || info.NetworkSettings?.IPAddress || undefined;
    return {
      id: info.Id,
      name: info.Name.replace(/^\//, ''),
      labels: info.Config?.Labels ?? {},
      running: info.State.Running,
      status: info.State.Status,
      exitCode: info.State.ExitCode,
      oomKilled: info.State.OOMKilled,
      image: info.Config?.Image ?? '',
      publishedPorts,
      volumeMounts,
      ...(networkAddress ? { networkAddress } : {}),
      ...(info.State.Running && info.State.Pid > 0 ? { pid: info.State.Pid } : {}),
      ...(limits ? { limits } : {}),
    };
  }

  /**
   * Containers (running or not) carrying every one of `labels`. Docker answers a list from
   * its in-memory view, without the per-container lock an inspect waits on (held for the
   * hundred-odd ms a stopped container's clean-up takes).
   */
  async listContainers(labels: Record<string, string>): Promise<ContainerSummary[]> {
    const filters = { label: Object.entries(labels).map(([k, v]) => `${k}=${v}`) };
    const list = await this.#call('list containers', JSON.stringify(labels), () =>
      this.#docker.listContainers({ all: true, filters: JSON.stringify(filters) }),
    );
    return (list ?? []).map((c) => ({
      id: c.Id,
      name: (c.Names[0] ?? c.Id).replace(/^\//, ''),
      labels: c.Labels ?? {},
      running: c.State === 'running',
      volumeMounts: Object.fromEntries(
        (c.Mounts ?? []).filter((m) => m.Type === 'volume' && m.Name).map((m) => [m.Destination, m.Name as string]),
      ),
    }));
  }

  /** Names of volumes carrying every one of `labels`. */
  async listVolumes(labels: Record<string, string>): Promise<string[]> {
    return (await this.listVolumeSummaries(labels)).map((v) => v.name);
  }

  /** Volumes carrying every one of `labels`, with all their labels. */
  async listVolumeSummaries(labels: Record<string, string>): Promise<VolumeSummary[]> {
    const filters = { label: Object.entries(labels).map(([k, v]) => `${k}=${v}`) };
    const res = await this.#call('list volumes', JSON.stringify(labels), () =>
      this.#docker.listVolumes({ filters: JSON.stringify(filters) }),
    );
    return (res?.Volumes ?? []).map((v) => ({ name: v.Name, labels: v.Labels ?? {} }));
  }

  async volumeExists(name: string): Promise<boolean> {
    return (
      (await this.#call('inspect volume', name, () => this.#docker.getVolume(name).inspect(), [404])) !== undefined
    );
  }

  /**
   * Where the volume's data lives on this host, with its labels; undefined when there is no
   * such volume. Only local-driver volumes have a directory the agent can read.
   */
  async inspectVolume(name: string): Promise<{ mountpoint: string; labels: Record<string, string> } | undefined> {
    const info = await this.#call('inspect volume', name, () => this.#docker.getVolume(name).inspect(), [404]);
    if (!info) return undefined;
    if (info.Driver !== 'local')
      throw new DockerError(`volume ${name} uses driver ${info.Driver}; only local volumes can be copied`);
    return { mountpoint: info.Mountpoint, labels: info.Labels ?? {} };
  }

  /** Creates the volume unless it exists (an existing one and its data are kept as they are); true when this call created it (so it is empty). */
  async ensureVolume(name: string, labels: Record<string, string>): Promise<boolean> {
    if (await this.volumeExists(name)) return false;
    await this.#call('create volume', name, () => this.#docker.createVolume({ Name: name, Labels: labels }));
    return true;
  }

  async removeVolume(name: string): Promise<void> {
    await this.#call('remove volume', name, () => this.#docker.getVolume(name).remove(), [404]);
  }

  /**
   * Creates a container and puts its secret files in, before anything starts it; when one
   * with the same name already exists, returns its id instead, with the files put in again
   * (a create interrupted before the files were in is completed this way).
   */
  async createContainer(spec: ContainerSpec): Promise<string> {
    const { options } = spec;
    const name = options.name ?? '(unnamed)';
    let id: string | undefined;
    try {
      id = (await this.#docker.createContainer(options)).id;
    } catch (error) {
      if (statusOf(error) === 409 && options.name) {
        const existing = await this.inspectContainer(options.name);
        // Only a container made for the same replica gets the secrets, never a stranger
        // that happens to carry the name.
        const identity = [labelKeys.cluster, labelKeys.node, labelKeys.instance, labelKeys.ordinal];
        const ours = identity.every((key) => existing?.labels[key] === options.Labels?.[key]);
        if (existing && !ours) {
          throw new DockerError(`docker create container ${name} failed: the name is taken by another container`);
        }
        id = existing?.id;
      }
      if (!id) throw new DockerError(`docker create container ${name} failed: ${detailOf(error)}`, { cause: error });
    }
    await this.putSecretFiles(id, spec.secretFiles);
    return id;
  }

  /** Puts (or replaces) a container's secret files; a running container's too. */
  async putSecretFiles(id: string, secretFiles: SecretFiles): Promise<void> {
    const archive = await secretFilesArchive(secretFiles);
    const container = this.#docker.getContainer(id);
    // The message names the directory only, never a file's content.
    await this.#call(`put secret files (${secretFiles.spec.dir}) into container`, id, () =>
      container.putArchive(archive, { path: '/' }),
    );
  }

  async startContainer(id: string): Promise<void> {
    await this.#call('start container', id, () => this.#docker.getContainer(id).start(), [304]);
  }

  /** Stops gracefully (the container's stop signal), killing after `timeoutSeconds`. */
  async stopContainer(id: string, timeoutSeconds: number): Promise<void> {
    await this.#call('stop container', id, () => this.#docker.getContainer(id).stop({ t: timeoutSeconds }), [304, 404]);
  }

  /**
   * SIGKILL, at once: for fencing, where a graceful stop would let the service keep
   * acknowledging writes while it shuts down. "Not running" and "gone" count as done.
   */
  async killContainer(id: string): Promise<void> {
    await this.#call(
      'kill container',
      id,
      () => this.#docker.getContainer(id).kill({ signal: 'SIGKILL' }),
      [304, 404, 409],
    );
  }

  /**
   * Changes a container's CPU and memory limits in place (`docker update`), running or not.
   * The swap limit follows the memory limit as at creation (Docker's default: twice it).
   */
  async updateLimits(id: string, limits: ContainerLimits): Promise<void> {
    const memory = limits.memoryMb * mebibyte;
    await this.#call('update container', id, () =>
      this.#docker
        .getContainer(id)
        .update({ Memory: memory, MemorySwap: 2 * memory, NanoCpus: limits.cpuMillis * 1_000_000 }),
    );
  }

  /** Memory the container's processes hold, page cache the kernel can drop excluded (as `docker stats` shows it). */
  async memoryInUseMb(id: string): Promise<number> {
    const stats = (await this.#call('stats of container', id, () =>
      this.#docker.getContainer(id).stats({ stream: false }),
    )) as { memory_stats?: { usage?: number; stats?: Record<string, number> } } | undefined;
    const memory = stats?.memory_stats;
    const cache = memory?.stats?.total_inactive_file ?? memory?.stats?.inactive_file ?? 0;
    return Math.max(0, (memory?.usage ?? 0) - cache) / mebibyte;
  }

  async removeContainer(id: string): Promise<void> {
    await this.#call('remove container', id, () => this.#docker.getContainer(id).remove({ force: true }), [404]);
  }

  /** The last `lines` lines of the container's stdout and stderr. */
  async logsTail(id: string, lines: number): Promise<string> {
    const raw = await this.#call('read logs of', id, () =>
      this.#docker.getContainer(id).logs({ stdout: true, stderr: true, tail: lines, follow: false }),
    );
    if (!raw) return '';
    return (await demultiplex(this.#docker.modem, Buffer.isBuffer(raw) ? raw : Buffer.from(String(raw)))).all;
  }

  /** Starts `cmd` in the container with stdin attached; its output arrives demultiplexed. */
  async attachExec(id: string, cmd: string[]): Promise<AttachedExec> {
    const target = `${cmd[0] ?? ''} in ${id}`;
    const exec = await this.#call('create exec', target, () =>
      this.#docker.getContainer(id).exec({ Cmd: cmd, AttachStdin: true, AttachStdout: true, AttachStderr: true }),
    );
    if (!exec) throw new DockerError(`docker create exec ${target} returned nothing`);
    const stream = await this.#call('start exec', target, () => exec.start({ hijack: true, stdin: true }));
    if (!stream) throw new DockerError(`docker start exec ${target} returned nothing`);
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    this.#docker.modem.demuxStream(stream, stdout, stderr);
    const ended = () => {
      stdout.end();
      stderr.end();
    };
    stream.once('end', ended);
    stream.once('close', ended);
    stream.once('error', ended);
    return {
      stdin: stream,
      stdout,
      stderr,
      close: () => (stream as unknown as { destroy(): void }).destroy(),
    };
  }

  /**
   * Runs `cmd` inside a running container and waits for it, at most `timeoutMs`.
   * A command still running at the deadline is abandoned (exitCode null); Docker offers no
   * way to kill an exec, and readiness probes are short anyway.
   */
  async exec(id: string, cmd: string[], timeoutMs: number): Promise<ExecResult> {
    const target = `${cmd[0] ?? ''} in ${id}`;
    const exec = await this.#call('create exec', target, () =>
      this.#docker.getContainer(id).exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true }),
    );
    if (!exec) throw new DockerError(`docker create exec ${target} returned nothing`);
    const stream = await this.#call('start exec', target, () => exec.start({ hijack: true, stdin: false }));
    if (!stream) throw new DockerError(`docker start exec ${target} returned nothing`);
    const collected = collectOutput(this.#docker.modem, stream);
    const finished = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      stream.once('end', () => {
        clearTimeout(timer);
        resolve(true);
      });
      stream.once('error', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    const { stdout, stderr, all: output } = collected();
    if (!finished) {
      (stream as unknown as { destroy?: () => void }).destroy?.();
      return { exitCode: null, output, stdout, stderr };
    }
    // The stream ends when the process closes its output; its exit code follows shortly.
    for (let attempt = 0; attempt < 50; attempt++) {
      const info = await this.#call('inspect exec', target, () => exec.inspect());
      if (info && !info.Running && info.ExitCode !== null) return { exitCode: info.ExitCode, output, stdout, stderr };
      await new Promise((r) => setTimeout(r, 20));
    }
    return { exitCode: null, output, stdout, stderr };
  }
}
