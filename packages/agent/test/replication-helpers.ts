import {
  type AssignmentRecord,
  type Etcd3,
  type InstanceSecret,
  type Keyspace,
  type ReplicaStatus,
  readRecord,
  statusCodec,
  waitFor,
} from '@service-foundry/core';
import { ensureBusyboxImage } from '@service-foundry/test-support/docker';
import { DockerRuntime } from '../src/docker-runtime.js';
import { writeCatalog } from './helpers.js';

export const runtime = new DockerRuntime('/var/run/docker.sock');

/** The instance secret of the catalog Postgres instances these tests run. */
export const postgresSecret: InstanceSecret = {
  adminUser: 'postgres',
  adminPassword: 'pg-admin-pw',
  replicationUser: 'replicator',
  replicationPassword: 'pg-replication-pw',
};

/**
 * A replicated service in a few lines of shell, so the agent's rules can be tested fast
 * and deterministically: files in /data (the volume) stand in for the database, and every
 * command the agent runs is appended to /data/actions (`rotate` with the passwords its
 * files hold then: a test service has no secrets to keep). Like Postgres, a promoted volume
 * starts as primary whatever the environment says, and a replica "clones" only on an
 * empty volume. Two documentation address ranges stand for upstreams that are gone:
 * cloning from 192.0.2.0/24 waits forever with nothing serving (a Postgres clone retrying;
 * `follow` fails meanwhile), and a replica following 198.51.100.0/24 serves but is never
 * ready (a Redis replica waiting for its first sync).
 */
const script = `#!/bin/sh
set -u
state=/data
cmd=\${1:-run}
[ $# -gt 0 ] && shift
act() { echo "$*" >> $state/actions; }
case "$cmd" in
  run)
    if [ ! -f $state/role ]; then
      if [ "$SF_ROLE" = replica ]; then
        case "$SF_UPSTREAM_HOST" in
          192.0.2.*)
            act "clone waits for $SF_UPSTREAM_HOST $SF_UPSTREAM_PORT"
            trap 'exit 0' TERM
            while :; do sleep 1 & wait $!; done ;;
        esac
        echo "$SF_UPSTREAM_HOST:$SF_UPSTREAM_PORT" > $state/upstream
        act "clone $SF_UPSTREAM_HOST $SF_UPSTREAM_PORT"
      else
        act init
      fi
      echo "$SF_ROLE" > $state/role
      echo 0 > $state/position
    fi
    act "start $(cat $state/role)"
    trap 'exit 0' TERM
    httpd -f -p 8080 -h /www & wait ;;
  promote)
    if [ -f $state/fail-promote ]; then echo "promote refused: $(cat $state/fail-promote)" >&2; exit 3; fi
    echo primary > $state/role
    act promote ;;
  follow)
    [ -f $state/role ] || { echo "follow: nothing serves yet (cloning)" >&2; exit 1; }
    [ "$(cat $state/role)" = replica ] || { echo "follow: this server is a primary" >&2; exit 3; }
    echo "$1:$2" > $state/upstream; act "follow $1 $2" ;;
  ready)
    wget -q -O /dev/null http://127.0.0.1:8080/ || exit 1
    if [ "$(cat $state/role)" = replica ]; then
      case "$(cat $state/upstream)" in
        198.51.100.*) echo "not synced: upstream $(cat $state/upstream) does not answer" >&2; exit 1 ;;
      esac
    fi ;;
  configure) echo "$1 $2" > $state/io; act "configure $1 $2" ;;
  position) cat $state/position ;;
  role) cat $state/role ;;
  rotate)
    if [ -f $state/fail-rotate ]; then echo "rotate refused: $(cat $state/fail-rotate)" >&2; exit 3; fi
    act "rotate $1 as $(cat $state/role): admin $(cat $SF_ADMIN_PASSWORD_FILE), previous $(cat $SF_ADMIN_PASSWORD_FILE.previous)" ;;
  *) echo "unknown command $cmd" >&2; exit 2 ;;
esac
`;

const applets = ['sh', 'cat', 'echo', 'httpd', 'wget', 'rm', 'touch', 'sleep'];

/** Builds (once, tagged by content hash) the image of the replicated test service. */
export function ensureReplicatedImage(): Promise<string> {
  return ensureBusyboxImage({
    repo: 'service-foundry-test/replicated',
    page: 'replicated test service\n',
    cmd: ['/bin/sf-test', 'run'],
    applets,
    files: [{ name: 'bin/sf-test', mode: 0o755, body: script }],
  });
}

export const replicatedServiceName = 'busybox-replicated';
export const volumePath = '/data';

/** A catalog with the replicated test service. */
export function writeReplicatedCatalog(image: string): Promise<string> {
  const entry = {
    osb: {
      id: 'c1f1c0de-0000-4000-8000-000000000011',
      name: replicatedServiceName,
      description: 'busybox pretending to replicate, for agent tests',
      bindable: false,
      plans: [{ id: 'c1f1c0de-0000-4000-8000-000000000012', name: 'tiny', description: 'tiny' }],
    },
    plans: {
      tiny: {
        resources: { cpuMillis: 100, memoryMb: 32, diskMb: 8 },
        replicas: 3,
        connections: { service: 20, router: 10 },
      },
    },
    runtime: {
      image,
      port: 8080,
      protocol: 'tcp',
      volumePath,
      env: {},
      adminUser: 'admin',
      adminPasswordFileEnv: 'SF_ADMIN_PASSWORD_FILE',
      secretFiles: { dir: '/run/sf-secrets', uid: 0, gid: 0 },
      readiness: { exec: ['/bin/sf-test', 'ready'], timeoutSeconds: 20 },
      stopSignal: 'SIGTERM',
    },
    binding: { driver: 'postgres', database: 'none', create: [], drop: [], uriScheme: 'http' },
    replication: {
      port: 8080,
      env: {
        role: 'SF_ROLE',
        upstreamHost: 'SF_UPSTREAM_HOST',
        upstreamPort: 'SF_UPSTREAM_PORT',
        replicationUser: 'SF_REPL_USER',
        replicationPasswordFile: 'SF_REPL_PASSWORD_FILE',
        replicaName: 'SF_REPLICA_NAME',
      },
      promote: ['/bin/sf-test', 'promote'],
      follow: ['/bin/sf-test', 'follow', '{{host}}', '{{port}}'],
      configure: ['/bin/sf-test', 'configure', '{{durability}}', '{{localIo}}'],
      position: ['/bin/sf-test', 'position'],
      role: ['/bin/sf-test', 'role'],
    },
    rotatePasswords: ['/bin/sf-test', 'rotate', '{{phase}}'],
    image: { context: 'image', tag: image },
  };
  return writeCatalog('sf-agent-repl-catalog', replicatedServiceName, entry);
}

/** Runs a shell command in a container and returns its stdout; throws unless it exits 0. */
export async function shellIn(container: string, command: string, timeoutMs = 10_000): Promise<string> {
  const result = await runtime.exec(container, ['sh', '-c', command], timeoutMs);
  if (result.exitCode !== 0)
    throw new Error(`\`${command}\` in ${container}: exit ${result.exitCode} ${result.output}`);
  return result.stdout;
}

export function assignmentFor(
  instanceId: string,
  ordinal: number,
  fields: Partial<AssignmentRecord> = {},
): AssignmentRecord {
  return {
    instanceId,
    ordinal,
    serviceName: replicatedServiceName,
    planName: 'tiny',
    resources: { cpuMillis: 100, memoryMb: 32, diskMb: 8 },
    desired: 'running',
    ...fields,
  };
}

/** Waits until the replica's status satisfies `accept`; the timeout names the last status seen. */
export async function statusWhere(
  client: Etcd3,
  keys: Keyspace,
  instanceId: string,
  ordinal: number,
  description: string,
  accept: (status: ReplicaStatus) => boolean,
  timeoutMs = 20_000,
): Promise<ReplicaStatus> {
  let last: ReplicaStatus | undefined;
  try {
    return await waitFor(
      async () => {
        last = (await readRecord(client, statusCodec, keys.status(instanceId, ordinal)))?.value;
        return last && accept(last) ? last : undefined;
      },
      { description, timeoutMs, intervalMs: 50 },
    );
  } catch (error) {
    throw new Error(`${(error as Error).message}; last status: ${JSON.stringify(last)}`, { cause: error });
  }
}
