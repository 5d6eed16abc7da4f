/**
 * The CA of the cluster a test process talks to (`$SF_HOME/pki/ca.crt` of `startCluster`),
 * the one every binding hands its app as `ca_certificate`: the tests' clients verify the
 * services with it, as an app would. libpq (psql) finds it in `PGSSLROOTCERT`; node-postgres
 * and redis-cli are given it by `withClusterCa` and `redis-cli.ts`.
 */
let caFile: string | undefined;

/** Trust `file` for the services of the cluster this process started (startCluster calls it). */
export function trustClusterCa(file: string): void {
  caFile = file;
  process.env.PGSSLROOTCERT = file;
}

/** The cluster CA file, once a cluster was started in this process. */
export function clusterCaFile(): string | undefined {
  return caFile;
}

/**
 * A binding URI that asks for verification (`sslmode=verify-…`) with the cluster CA named in
 * it (`sslrootcert`), which node-postgres reads (it ignores `PGSSLROOTCERT`); any other URI
 * as it is.
 */
export function withClusterCa(uri: string): string {
  if (caFile === undefined || !/[?&]sslmode=verify-/.test(uri) || /[?&]sslrootcert=/.test(uri)) return uri;
  return `${uri}&sslrootcert=${encodeURIComponent(caFile)}`;
}

/**
 * A binding URI naming several routers (`postgres://u:p@h1:p,h2:p/db?…`, which libpq reads
 * and node-postgres does not) as one URI per router, in order, without
 * `target_session_attrs` (node-postgres does not know it; every router leads to the primary).
 */
export function perRouterUris(uri: string): string[] {
  const match = /^([a-z]+:\/\/[^@/]*@)([^/?]+)(.*)$/.exec(uri);
  if (!match) return [uri];
  const [, head, hosts, rest] = match as unknown as [string, string, string, string];
  const tail = rest.replace(/([?&])target_session_attrs=[^&]*&?/, '$1').replace(/[?&]$/, '');
  return hosts.split(',').map((host) => `${head}${host}${tail}`);
}
