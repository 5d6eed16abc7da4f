import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import {
  createLogger,
  type Etcd3,
  type EtcdProcess,
  type InstanceSecret,
  type Keyspace,
  type Logger,
  SecretBox,
  sealedValue,
  startEtcd,
} from '@service-foundry/core';
import Docker from 'dockerode';
import { pack } from 'tar-stream';

export const docker = new Docker({ socketPath: '/var/run/docker.sock' });

export function uniqueId(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

/** Quiet unless SF_LOG_LEVEL asks otherwise; the agent's own behaviour is what tests check. */
export function testLogger(): Logger {
  return createLogger({ name: 'agent-test', level: process.env.SF_LOG_LEVEL ?? 'silent' });
}

/** The key agents under test open instance secrets with (one per machine, made once). */
export const secretsKeyFile = await SecretBox.ensureKeyFile(join(tmpdir(), 'sf-test-secrets.key'));
const secretBox = await SecretBox.fromKeyFile(secretsKeyFile);

/** Writes an instance secret the way the broker does: sealed for its key. */
export async function putSecret(client: Etcd3, keys: Keyspace, instanceId: string, secret: InstanceSecret) {
  const key = keys.secret(instanceId);
  await client
    .put(key)
    .value(sealedValue(secretBox, key, secret))
    .exec();
}

export interface TestEtcd {
  endpoint: string;
  stop(): Promise<void>;
}

export async function startTestEtcd(): Promise<TestEtcd> {
  const dir = await mkdtemp(join(tmpdir(), 'sf-agent-etcd-'));
  const etcd: EtcdProcess = await startEtcd({ dataDir: join(dir, 'data') });
  return {
    endpoint: etcd.endpoint,
    stop: async () => {
      await etcd.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The port the test image's web server listens on inside the container. */
export const testServicePort = 8080;
export const testPage = 'hello from the service-foundry agent test\n';

export interface BusyboxImageSpec {
  /** Repository; the tag is a hash of the content and command, so a changed image gets a new tag. */
  repo: string;
  cmd: string[];
  /** Served as /www/index.html. */
  page: string;
  /** busybox applets linked into /bin. */
  applets?: string[];
  /** Extra files, e.g. a script. */
  files?: Array<{ name: string; mode: number; body: string }>;
}

async function busyboxRootfs(spec: BusyboxImageSpec): Promise<Buffer> {
  const busybox = await readFile('/bin/busybox');
  const archive = pack();
  const mtime = new Date(0);
  const chunks: Buffer[] = [];
  archive.on('data', (chunk: unknown) => chunks.push(chunk as Buffer));
  const done = new Promise<void>((resolve, reject) => {
    archive.on('end', resolve);
    archive.on('error', reject);
  });
  for (const dir of ['bin', 'etc', 'www', 'tmp', 'data']) {
    archive.entry({ name: `${dir}/`, type: 'directory', mode: dir === 'tmp' ? 0o1777 : 0o755, mtime });
  }
  archive.entry({ name: 'bin/busybox', mode: 0o755, mtime }, busybox);
  for (const applet of spec.applets ?? []) {
    archive.entry({ name: `bin/${applet}`, type: 'symlink', linkname: 'busybox', mtime });
  }
  for (const file of spec.files ?? []) archive.entry({ name: file.name, mode: file.mode, mtime }, file.body);
  archive.entry({ name: 'etc/passwd', mode: 0o644, mtime }, 'root:x:0:0:root:/root:/bin/sh\n');
  archive.entry({ name: 'www/index.html', mode: 0o644, mtime }, spec.page);
  archive.finalize();
  await done;
  return Buffer.concat(chunks);
}

/**
 * A tiny image of busybox-static made with `docker import`, so tests need no registry and
 * no service image. Tagged by content hash and reused.
 */
export async function ensureBusyboxImage(spec: BusyboxImageSpec): Promise<string> {
  const tar = await busyboxRootfs(spec);
  const hash = createHash('sha256').update(tar).update(JSON.stringify(spec.cmd)).digest('hex').slice(0, 16);
  const image = `${spec.repo}:${hash}`;
  try {
    await docker.getImage(image).inspect();
    return image;
  } catch {
    // Not built yet.
  }
  const progress = await docker.importImage(Readable.from([tar]), {
    repo: spec.repo,
    tag: hash,
    changes: [`CMD ${JSON.stringify(spec.cmd)}`],
  } as object);
  await new Promise<void>((resolve, reject) => {
    docker.modem.followProgress(progress, (error) => (error ? reject(error) : resolve()));
  });
  await docker.getImage(image).inspect();
  return image;
}

/** The agent tests' service: busybox serving one page over HTTP. */
export function ensureTestImage(): Promise<string> {
  // A shell as PID 1 that exits on SIGTERM: a plain httpd as PID 1 would ignore it, and
  // every graceful stop would wait for Docker's kill timeout.
  return ensureBusyboxImage({
    repo: 'service-foundry-test/busybox',
    page: testPage,
    cmd: ['/bin/busybox', 'sh', '-c', `trap 'exit 0' TERM; /bin/busybox httpd -f -p ${testServicePort} -h /www & wait`],
  });
}

export interface TestService {
  name: string;
  catalogDir: string;
  /** Names the admin password's file: the agent passes no password in the environment. */
  adminPasswordFileEnv: string;
  /** Where the agent puts the secret files in the container. */
  secretsDir: string;
  volumePath: string;
}

export interface TestCatalogOptions {
  /** The service's `backup` recipe; absent: the service declares none (as before). */
  backup?: { prepare: string[]; dir: string };
}

/** A catalog with one service that runs the test image. */
export async function writeTestCatalog(image: string, options: TestCatalogOptions = {}): Promise<TestService> {
  const catalogDir = await mkdtemp(join(tmpdir(), 'sf-agent-catalog-'));
  const name = 'busybox-web';
  const adminPasswordFileEnv = 'TEST_ADMIN_PASSWORD_FILE';
  const secretsDir = '/run/sf-secrets';
  const volumePath = '/data';
  const entry = {
    osb: {
      id: 'c1f1c0de-0000-4000-8000-000000000001',
      name,
      description: 'busybox httpd, for agent tests',
      bindable: false,
      plans: [{ id: 'c1f1c0de-0000-4000-8000-000000000002', name: 'tiny', description: 'tiny' }],
    },
    plans: {
      tiny: {
        resources: { cpuMillis: 250, memoryMb: 64, diskMb: 16 },
        replicas: 1,
        connections: { service: 20, router: 10 },
      },
    },
    runtime: {
      image: image,
      port: testServicePort,
      protocol: 'http',
      volumePath,
      env: { GREETING: 'hi' },
      adminUser: 'admin',
      adminPasswordFileEnv,
      secretFiles: { dir: secretsDir, uid: 0, gid: 0 },
      readiness: {
        exec: ['/bin/busybox', 'wget', '-q', '-O', '/dev/null', `http://127.0.0.1:${testServicePort}/`],
        timeoutSeconds: 20,
      },
      stopSignal: 'SIGTERM',
    },
    binding: { driver: 'postgres', database: 'none', create: [], drop: [], uriScheme: 'http' },
    image: { context: 'image', tag: image },
    ...(options.backup ? { backup: options.backup } : {}),
  };
  await mkdir(join(catalogDir, name));
  await writeFile(join(catalogDir, name, 'service.json'), JSON.stringify(entry, null, 2));
  return { name, catalogDir, adminPasswordFileEnv, secretsDir, volumePath };
}

/** Removes every container and volume labelled with the test's cluster id. */
export async function removeClusterResources(clusterId: string): Promise<void> {
  const filters = JSON.stringify({ label: [`sf.cluster=${clusterId}`] });
  for (const c of await docker.listContainers({ all: true, filters })) {
    await docker
      .getContainer(c.Id)
      .remove({ force: true })
      .catch(() => undefined);
  }
  const { Volumes } = await docker.listVolumes({ filters });
  for (const v of Volumes ?? []) {
    await docker
      .getVolume(v.Name)
      .remove()
      .catch(() => undefined);
  }
}

export async function volumeExists(name: string): Promise<boolean> {
  try {
    await docker.getVolume(name).inspect();
    return true;
  } catch {
    return false;
  }
}

export async function containerState(name: string): Promise<Docker.ContainerInspectInfo | undefined> {
  try {
    return await docker.getContainer(name).inspect();
  } catch {
    return undefined;
  }
}
