import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type Etcd3, type InstanceSecret, type Keyspace, sealedValue } from '@service-foundry/core';
import { makeTempDir, secretBox, secretsKeyFile, silentLogger } from '@service-foundry/test-support';
import { ensureBusyboxImage } from '@service-foundry/test-support/docker';
import { type AgentOptions, type RunningAgent, startAgent } from '../src/index.js';

/** The agent under test (its source), silent, on the etcd at `etcdEndpoint` under `keys`; `options` on top. */
export function startTestAgent(
  etcdEndpoint: string,
  keys: Keyspace,
  options: Omit<AgentOptions, 'etcdEndpoints' | 'secretsKeyFile'>,
): Promise<RunningAgent> {
  return startAgent(
    { etcdEndpoints: [etcdEndpoint], keyspaceRoot: keys.root, secretsKeyFile, ...options },
    { log: silentLogger() },
  );
}

/** Writes an instance secret the way the broker does: sealed for its key. */
export async function putSecret(client: Etcd3, keys: Keyspace, instanceId: string, secret: InstanceSecret) {
  const key = keys.secret(instanceId);
  await client
    .put(key)
    .value(sealedValue(secretBox, key, secret))
    .exec();
}

/** A catalog folder (the caller removes it) holding one service entry, `<name>/service.json`. */
export async function writeCatalog(prefix: string, name: string, entry: object): Promise<string> {
  const catalogDir = (await makeTempDir(prefix)).path;
  await mkdir(join(catalogDir, name));
  await writeFile(join(catalogDir, name, 'service.json'), JSON.stringify(entry, null, 2));
  return catalogDir;
}

/** The port the test image's web server listens on inside the container. */
export const testServicePort = 8080;
export const testPage = 'hello from the service-foundry agent test\n';

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
  const catalogDir = await writeCatalog('sf-agent-catalog', name, entry);
  return { name, catalogDir, adminPasswordFileEnv, secretsDir, volumePath };
}
