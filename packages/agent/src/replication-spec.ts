import type {
  AssignmentRecord,
  Endpoint,
  InstanceSecret,
  ReplicaRole,
  ServiceReplicationRecipe,
} from '@service-foundry/core';

/** The name a replica has inside its service (Postgres `application_name`, standby names). */
export function serviceReplicaName(ordinal: number): string {
  return `r${ordinal}`;
}

/**
 * The recipe's environment for a new container: its role, its name, the replication user
 * (when the instance secret has one) and, for a replica, the upstream it clones from. The
 * replication password is not among them: it goes into the container as a file
 * (containerCreateOptions, secret-files.ts). Values come from validated records only.
 */
export function replicationEnv(
  recipe: ServiceReplicationRecipe,
  assignment: AssignmentRecord,
  role: ReplicaRole,
  secret: InstanceSecret,
): Record<string, string> {
  const env: Record<string, string> = {
    [recipe.env.role]: role,
    [recipe.env.replicaName]: serviceReplicaName(assignment.ordinal),
  };
  if (secret.replicationUser !== undefined) env[recipe.env.replicationUser] = secret.replicationUser;
  if (role === 'replica' && assignment.upstream) {
    env[recipe.env.upstreamHost] = assignment.upstream.host;
    env[recipe.env.upstreamPort] = String(assignment.upstream.port);
  }
  return env;
}

/**
 * A recipe command with `{{name}}` placeholders filled in. Each value replaces text inside
 * one argv element (no shell is involved), so a value can never become another argument.
 */
export function fillCommand(template: readonly string[], values: Record<string, string>): string[] {
  return template.map((arg) => arg.replace(/\{\{(\w+)\}\}/g, (whole, name: string) => values[name] ?? whole));
}

export function sameEndpoint(a: Endpoint | undefined, b: Endpoint | undefined): boolean {
  return a?.host === b?.host && a?.port === b?.port;
}

/** `host:port`, as the `sf.upstream` label and messages carry an endpoint. */
export function endpointText(endpoint: Endpoint): string {
  return `${endpoint.host}:${endpoint.port}`;
}

/** `host:port` (endpointText) as an endpoint; undefined unless well-formed. */
export function parseEndpoint(text: string | undefined): Endpoint | undefined {
  if (!text) return undefined;
  const colon = text.lastIndexOf(':');
  const host = text.slice(0, colon);
  const port = Number(text.slice(colon + 1));
  if (colon <= 0 || !Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  return { host, port };
}
