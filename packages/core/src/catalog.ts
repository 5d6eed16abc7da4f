import { readdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { describeAjvErrors } from './config.js';
import { CatalogError } from './errors.js';
import {
  type Durability,
  durabilities,
  type FencingPolicy,
  fencingPolicies,
  type LocalIo,
  localIos,
  type Resources,
} from './records/shared.js';

/** The OSB plan object, as served by `GET /v2/catalog`. */
export interface OsbPlan {
  id: string;
  name: string;
  description: string;
  free?: boolean;
  bindable?: boolean;
  /** OSB 2.15: the plan's image and configuration generation (semver 2.0). */
  maintenance_info?: { version: string; description?: string };
  /** OSB 2.15: overrides the service's `plan_updateable`. */
  plan_updateable?: boolean;
  /** OSB 2.15: how long a platform should poll an operation, in seconds. */
  maximum_polling_duration?: number;
  /** OSB 2.17: whether bindings of the plan can be rotated (`predecessor_binding_id`). */
  binding_rotatable?: boolean;
  metadata?: Record<string, unknown>;
  schemas?: {
    service_instance?: {
      create?: { parameters?: Record<string, unknown> };
      update?: { parameters?: Record<string, unknown> };
    };
    service_binding?: { create?: { parameters?: Record<string, unknown> } };
  };
}

/** The OSB service offering object, as served by `GET /v2/catalog`. */
export interface OsbService {
  id: string;
  name: string;
  description: string;
  bindable: boolean;
  plan_updateable?: boolean;
  instances_retrievable?: boolean;
  bindings_retrievable?: boolean;
  /** OSB 2.15: whether a PATCH carrying only a changed `context` is welcome. */
  allow_context_updates?: boolean;
  tags?: string[];
  metadata?: Record<string, unknown>;
  plans: OsbPlan[];
}

/** What the platform needs to know about a plan beyond OSB: its size and shape. */
export interface PlanSizing {
  resources: Resources;
  /** Replicas when the user does not ask for a number. */
  replicas: number;
  /** Where the plan's replicas may run; absent: anywhere. */
  constraints?: PlacementConstraints;
  /** Values of the plan's parameters when the user gives none (OSB parameter names). */
  defaults?: PlanDefaults;
  /**
   * Standbys by volume shipping instead of the service's native replication: the first
   * replica serves, the others are cold copies of its volume refreshed every
   * `intervalSeconds` (the RPO) and promoted from their latest complete copy on failover.
   */
  volumeShipping?: { intervalSeconds: number };
  /** Connection limits sized to the plan's memory (see {@link PlanConnections}). */
  connections: PlanConnections;
  /**
   * Whether clients may connect without TLS. Only for services with `runtime.tls`, and only
   * a mode its `runtime.tls.clients` lists; replication is TLS either way.
   * @default 'required'
   */
  tls?: ClientTlsMode;
}

/** `required`: clients must use TLS; `optional`: TLS offered, plaintext accepted too. */
export type ClientTlsMode = 'required' | 'optional';

/**
 * How a service's containers use the node's service certificate: the agent puts it, its
 * key and the cluster CA into them as files (`SF_TLS_*_FILE`), and the image serves client
 * connections and replication over TLS with it.
 */
export interface ServiceTlsSpec {
  /** The client TLS modes the image can honour (a plan's `tls` must be one of them). */
  clients: ClientTlsMode[];
}

/** The client TLS mode of a plan: its own, `required` by default, `none` for a service without TLS. */
export function planClientTls(
  entry: Pick<CatalogEntry, 'runtime' | 'plans'>,
  planName: string,
): ClientTlsMode | 'none' {
  if (!entry.runtime.tls) return 'none';
  return entry.plans[planName]?.tls ?? 'required';
}

/**
 * How many connections one replica of a plan takes. Sized to the plan's memory so that
 * connections alone can never exhaust it (a Postgres backend is a process of its own).
 */
export interface PlanConnections {
  /**
   * The service's own limit (Postgres `max_connections`, Redis `maxclients`); the agent
   * passes it to the container as `SF_MAX_CONNECTIONS`.
   */
  service: number;
  /**
   * Client sessions the router lets through to one instance at a time. Below `service`,
   * so the platform's own sessions (replication, bindings, backups) always find a slot.
   */
  router: number;
}

/** How an instance's replicas follow its primary. */
export type ReplicationMode = 'native' | 'volume-shipping' | 'none';

/** Parameter defaults a plan declares: IO and failover settings. */
export interface PlanDefaults {
  durability?: Durability;
  local_io?: LocalIo;
  fencing?: FencingPolicy;
  fencing_timeout_s?: number;
  max_lag_bytes?: number;
}

/** Placement rules a plan imposes on its replicas (read by the scheduler's filters). */
export interface PlacementConstraints {
  /** Labels a node must carry, e.g. `{ "disk": "ssd" }`. */
  nodeLabels?: Record<string, string>;
}

export interface ServiceRuntime {
  /** Image built offline by `sf images build`. */
  image: string;
  /** The same service from an upstream registry, for sites that have one. */
  upstreamImage?: string;
  port: number;
  protocol: 'tcp' | 'http';
  volumePath: string;
  env: Record<string, string>;
  adminUser: string;
  /**
   * Environment variable that names the admin password's file (e.g. `POSTGRES_PASSWORD_FILE`
   * = `/run/sf-secrets/admin-password`). The variable holds a path, never the password.
   */
  adminPasswordFileEnv: string;
  /**
   * Where the agent puts the container's secrets as files before it starts (a tar through
   * the Docker API): a directory of mode 0500 holding files of mode 0400, owned by the
   * service's user, so no password is in the container's environment or command line.
   */
  secretFiles: SecretFilesSpec;
  /**
   * A command run inside the container; exit 0 means ready. With `wire`, the agent instead
   * speaks the service's protocol to its published port, with `exec`'s meaning (Postgres:
   * `pg_isready`'s rule), every few ms rather than every ~100 ms an exec takes.
   */
  readiness: { exec: string[]; timeoutSeconds: number; wire?: ReadinessWireSpec };
  stopSignal?: string;
  /** Absent: the image has no TLS; its plans cannot name a `tls` mode. */
  tls?: ServiceTlsSpec;
}

/** A readiness check over the service's protocol: no password, the answer to a startup alone. */
export interface ReadinessWireSpec {
  protocol: 'postgres';
  user: string;
  database: string;
}

/** Where and for whom the agent writes a container's secret files. */
export interface SecretFilesSpec {
  /** Absolute directory inside the container, e.g. `/run/sf-secrets`. */
  dir: string;
  /** Numeric owner of the directory and files: the user the service runs as. */
  uid: number;
  /** Numeric group of the directory and files. */
  gid: number;
}

export interface ServiceBindingRecipe {
  /** Which broker driver talks to the service: it runs `create`/`drop` as the admin. */
  driver: 'postgres' | 'redis';
  /** Database binding users get rights on and connect to (Postgres; Redis has none). */
  database?: string;
  /**
   * Statements with `{{username}}`, `{{password}}`, `{{database}}` placeholders (Postgres
   * also `{{passwordVerifier}}`: the password as a SCRAM-SHA-256 verifier computed by the
   * broker, so the clear password never reaches the server's statement log). One transaction.
   */
  create: string[];
  /**
   * Committed before `drop` (Postgres): locks the user out, so that no new session can
   * start while `drop` ends the existing ones. Absent: `drop` runs alone.
   */
  disable?: string[];
  /** Removes the user; one transaction, run only when the user exists. */
  drop: string[];
  /** URI scheme of the returned `uri` credential. */
  uriScheme: string;
}

/**
 * How the platform drives a service's native replication. Commands run inside the replica's
 * container (docker exec) with `{{placeholders}}` substituted by the agent; each exits 0 on
 * success.
 */
export interface ServiceReplicationRecipe {
  /** Container port replicas stream from (reached on the container's address). */
  port: number;
  /** Environment variables set at container creation (names; no variable holds a secret). */
  env: {
    role: string;
    upstreamHost: string;
    upstreamPort: string;
    replicationUser: string;
    /** Names the replication password's file (in `runtime.secretFiles.dir`), not the password. */
    replicationPasswordFile: string;
    replicaName: string;
  };
  /**
   * Make this replica the primary; exit 0 only once it is one (accepts writes): the agent
   * reports the promotion on that exit status, without asking `role` again.
   */
  promote: string[];
  /** Stream from `{{host}}:{{port}}` (re-point a running replica). */
  follow: string[];
  /** Apply `{{durability}}` and `{{localIo}}`. */
  configure: string[];
  /** Print the replication position as a decimal integer. */
  position: string[];
  /** Print `primary` or `replica`. */
  role: string[];
  /**
   * A long-lived command that serves `role`, `position` and `promote` (when each is this
   * program with one word) one per line on stdin: it prints `sf-session 1` first, then for
   * each request one line, `<exit code> <stdout on one line>`. The agent keeps one per
   * container and sends those three through it: a reading costs a fork in the container
   * instead of a `docker exec`. A program that does not greet is run with `docker exec`.
   * @default undefined (every command by `docker exec`)
   */
  session?: string[];
  /**
   * The `durability` settings under which the service acknowledges a write only once a
   * standby has it (what makes the most advanced standby hold every acknowledged write).
   * `sf explain` says "nothing acknowledged is lost" only under these.
   * @default [] (replication is asynchronous whatever `durability` says)
   */
  acknowledgedOnStandby?: Durability[];
}

/**
 * How the service makes a consistent copy of its data while it runs (`sf backup`). Without
 * one, a backup stops the replica, copies its volume and starts it again.
 */
export interface ServiceBackupRecipe {
  /**
   * Run inside the container (docker exec); writes a consistent copy of the service's data
   * into `{{path}}` (the container path of `dir`), laid out like the volume itself, so that
   * restoring it as a volume gives a service that starts. Exit 0 on success.
   */
  prepare: string[];
  /** Folder relative to the volume's root where `prepare` writes; the agent copies it to the store, then removes it. */
  dir: string;
}

export interface ServiceImageRecipe {
  /** Docker build context, relative to the entry's folder. */
  context: string;
  /** Tag the build produces; equals `runtime.image`. */
  tag: string;
}

export interface CatalogEntry {
  osb: OsbService;
  plans: Record<string, PlanSizing>;
  runtime: ServiceRuntime;
  binding: ServiceBindingRecipe;
  image: ServiceImageRecipe;
  /** Absent: the service runs unreplicated (one replica). */
  replication?: ServiceReplicationRecipe;
  /** Absent: backups are taken with the replica stopped. */
  backup?: ServiceBackupRecipe;
  /**
   * Run in a running container right before its volume is copied (a relocation's pre-copy):
   * writes what the service holds in memory to its volume (Postgres: `CHECKPOINT`), so the
   * copy is close to what a stop would leave and the final delta after the stop is small.
   * Absent: the volume is copied as it is.
   */
  flush?: string[];
  /**
   * Run in every running container of an instance when its passwords are rotated
   * (`sf rotate-credentials`), after the agent has put the new password files (and the
   * previous ones, as `<file>.previous`): makes the server take on the files' passwords.
   * `{{phase}}`: `accept-previous` (the previous passwords may still be accepted where the
   * service can hold two, as Redis ACL users can) or `new-only` (once every replica has the
   * new ones). Idempotent. Absent: the service's passwords cannot be rotated.
   */
  rotatePasswords?: string[];
  /** Folder the entry was loaded from. */
  dir: string;
}

const resources = {
  type: 'object',
  required: ['cpuMillis', 'memoryMb', 'diskMb'],
  additionalProperties: false,
  properties: {
    cpuMillis: { type: 'integer', minimum: 1 },
    memoryMb: { type: 'integer', minimum: 1 },
    diskMb: { type: 'integer', minimum: 1 },
  },
};

const command = { type: 'array', minItems: 1, items: { type: 'string' } };

const envName = { type: 'string', pattern: '^[A-Z_][A-Z0-9_]*$' };

const replicationEnvNames = [
  'role',
  'upstreamHost',
  'upstreamPort',
  'replicationUser',
  'replicationPasswordFile',
  'replicaName',
];

const replicationSchema = {
  type: 'object',
  required: ['port', 'env', 'promote', 'follow', 'configure', 'position', 'role'],
  additionalProperties: false,
  properties: {
    port: { type: 'integer', minimum: 1, maximum: 65535 },
    env: {
      type: 'object',
      required: replicationEnvNames,
      additionalProperties: false,
      properties: Object.fromEntries(replicationEnvNames.map((k) => [k, envName])),
    },
    promote: command,
    follow: command,
    configure: command,
    position: command,
    role: command,
    session: command,
    acknowledgedOnStandby: { type: 'array', items: { enum: durabilities }, uniqueItems: true },
  },
};

const entrySchema = {
  type: 'object',
  required: ['osb', 'plans', 'runtime', 'binding', 'image'],
  additionalProperties: false,
  properties: {
    $comment: { type: 'string' },
    osb: {
      type: 'object',
      required: ['id', 'name', 'description', 'bindable', 'plans'],
      properties: {
        id: { type: 'string', minLength: 1 },
        name: { type: 'string', pattern: '^[a-z0-9][a-z0-9-]*$' },
        description: { type: 'string' },
        bindable: { type: 'boolean' },
        plans: {
          type: 'array',
          minItems: 1,
          items: {
            type: 'object',
            required: ['id', 'name', 'description'],
            properties: { id: { type: 'string' }, name: { type: 'string' }, description: { type: 'string' } },
          },
        },
      },
    },
    plans: {
      type: 'object',
      additionalProperties: {
        type: 'object',
        required: ['resources', 'replicas', 'connections'],
        additionalProperties: false,
        properties: {
          resources,
          connections: {
            type: 'object',
            required: ['service', 'router'],
            additionalProperties: false,
            properties: {
              service: { type: 'integer', minimum: 2, maximum: 100_000 },
              router: { type: 'integer', minimum: 1, maximum: 100_000 },
            },
          },
          replicas: { type: 'integer', minimum: 1, maximum: 9 },
          tls: { enum: ['required', 'optional'] },
          volumeShipping: {
            type: 'object',
            required: ['intervalSeconds'],
            additionalProperties: false,
            properties: { intervalSeconds: { type: 'integer', minimum: 1, maximum: 86_400 } },
          },
          constraints: {
            type: 'object',
            additionalProperties: false,
            properties: { nodeLabels: { type: 'object', additionalProperties: { type: 'string' } } },
          },
          defaults: {
            type: 'object',
            additionalProperties: false,
            properties: {
              durability: { enum: durabilities },
              local_io: { enum: localIos },
              fencing: { enum: fencingPolicies },
              fencing_timeout_s: { type: 'integer', minimum: 1 },
              max_lag_bytes: { type: 'integer', minimum: 0 },
            },
          },
        },
      },
    },
    runtime: {
      type: 'object',
      required: [
        'image',
        'port',
        'protocol',
        'volumePath',
        'env',
        'adminUser',
        'adminPasswordFileEnv',
        'secretFiles',
        'readiness',
      ],
      additionalProperties: false,
      properties: {
        image: { type: 'string', minLength: 1 },
        upstreamImage: { type: 'string' },
        port: { type: 'integer', minimum: 1, maximum: 65535 },
        protocol: { enum: ['tcp', 'http'] },
        volumePath: { type: 'string', pattern: '^/' },
        env: { type: 'object', additionalProperties: { type: 'string' } },
        adminUser: { type: 'string', minLength: 1 },
        adminPasswordFileEnv: envName,
        secretFiles: {
          type: 'object',
          required: ['dir', 'uid', 'gid'],
          additionalProperties: false,
          properties: {
            // A plain absolute path: the agent builds tar entry names from it.
            dir: { type: 'string', pattern: '^(/[A-Za-z0-9_][A-Za-z0-9_.-]*)+$' },
            uid: { type: 'integer', minimum: 0, maximum: 65_535 },
            gid: { type: 'integer', minimum: 0, maximum: 65_535 },
          },
        },
        readiness: {
          type: 'object',
          required: ['exec', 'timeoutSeconds'],
          additionalProperties: false,
          properties: {
            exec: { type: 'array', minItems: 1, items: { type: 'string' } },
            timeoutSeconds: { type: 'integer', minimum: 1 },
            wire: {
              type: 'object',
              required: ['protocol', 'user', 'database'],
              additionalProperties: false,
              properties: {
                protocol: { enum: ['postgres'] },
                user: { type: 'string', minLength: 1, maxLength: 63, pattern: '^[A-Za-z0-9_.-]+$' },
                database: { type: 'string', minLength: 1, maxLength: 63, pattern: '^[A-Za-z0-9_.-]+$' },
              },
            },
          },
        },
        stopSignal: { type: 'string' },
        tls: {
          type: 'object',
          required: ['clients'],
          additionalProperties: false,
          properties: {
            clients: { type: 'array', minItems: 1, uniqueItems: true, items: { enum: ['required', 'optional'] } },
          },
        },
      },
    },
    binding: {
      type: 'object',
      required: ['driver', 'create', 'drop', 'uriScheme'],
      additionalProperties: false,
      properties: {
        driver: { enum: ['postgres', 'redis'] },
        database: { type: 'string', pattern: '^[a-z_][a-z0-9_]*$' },
        create: { type: 'array', items: { type: 'string' } },
        disable: { type: 'array', items: { type: 'string' } },
        drop: { type: 'array', items: { type: 'string' } },
        uriScheme: { type: 'string' },
      },
    },
    replication: replicationSchema,
    flush: command,
    rotatePasswords: command,
    backup: {
      type: 'object',
      required: ['prepare', 'dir'],
      additionalProperties: false,
      properties: { prepare: command, dir: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]*$' } },
    },
    image: {
      type: 'object',
      required: ['context', 'tag'],
      additionalProperties: false,
      properties: { context: { type: 'string' }, tag: { type: 'string' } },
    },
  },
};

const validateEntry = new Ajv({ allErrors: true, strict: false }).compile(entrySchema);

/** `services-catalog/` of this checkout, unless `SF_CATALOG_DIR` names another. */
export function defaultCatalogDir(): string {
  return process.env.SF_CATALOG_DIR ?? resolve(fileURLToPath(import.meta.url), '../../../../services-catalog');
}

export class Catalog {
  readonly entries: readonly CatalogEntry[];

  constructor(entries: readonly CatalogEntry[]) {
    this.entries = Object.freeze([...entries]);
  }

  /** Loads and validates every `<dir>/<service>/service.json`. */
  static async load(dir: string = defaultCatalogDir()): Promise<Catalog> {
    const entries: CatalogEntry[] = [];
    const names = (await readdir(dir, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name);
    for (const name of names.sort()) {
      const file = join(dir, name, 'service.json');
      let raw: unknown;
      try {
        raw = JSON.parse(await readFile(file, 'utf8'));
      } catch (error) {
        throw new CatalogError(`cannot read ${file}: ${(error as Error).message}`);
      }
      if (!validateEntry(raw)) {
        throw new CatalogError(`${file}: ${describeAjvErrors(validateEntry.errors).join('; ')}`);
      }
      const entry = { ...(raw as Omit<CatalogEntry, 'dir'>), dir: join(dir, name) };
      for (const plan of entry.osb.plans) {
        const sizing = entry.plans[plan.name];
        if (!sizing) throw new CatalogError(`${file}: plan ${plan.name} has no sizing under "plans"`);
        const clientTls = entry.runtime.tls ? (sizing.tls ?? 'required') : sizing.tls;
        if (clientTls !== undefined && !entry.runtime.tls?.clients.includes(clientTls)) {
          throw new CatalogError(
            `${file}: plan ${plan.name}: tls ${clientTls} is not one of the image's client TLS modes (runtime.tls.clients: ${JSON.stringify(entry.runtime.tls?.clients ?? [])})`,
          );
        }
        if (sizing.connections.router >= sizing.connections.service) {
          throw new CatalogError(
            `${file}: plan ${plan.name}: connections.router (${sizing.connections.router}) must be below connections.service (${sizing.connections.service})`,
          );
        }
      }
      entries.push(entry);
    }
    return new Catalog(entries);
  }

  byServiceId(serviceId: string): CatalogEntry | undefined {
    return this.entries.find((e) => e.osb.id === serviceId);
  }

  byServiceName(name: string): CatalogEntry | undefined {
    return this.entries.find((e) => e.osb.name === name);
  }

  /** Native replication (the service's recipe), volume shipping (the plan's), or none. */
  replicationMode(serviceName: string, planName: string): ReplicationMode {
    const entry = this.byServiceName(serviceName);
    if (entry?.plans[planName]?.volumeShipping) return 'volume-shipping';
    return entry?.replication ? 'native' : 'none';
  }

  /** The OSB catalog document. */
  osbCatalog(): { services: OsbService[] } {
    return { services: this.entries.map((e) => e.osb) };
  }
}
