import { request } from 'node:http';

export interface DockerReply {
  status: number;
  body: string;
}

/**
 * One call to the Docker Engine API over its unix socket, unversioned (the engine's own
 * default), so the agent needs nothing but Node.
 */
export function dockerRequest(
  socketPath: string,
  method: string,
  path: string,
  timeoutMs = 5000,
): Promise<DockerReply> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method, path, headers: { host: 'docker' }, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`Docker API ${method} ${path} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

interface ContainerSummary {
  Id: string;
  Labels?: Record<string, string>;
}

/** Containers carrying every label in `labels` (`key=value`) that are running, paused or restarting. */
export async function liveContainers(socketPath: string, labels: readonly string[]): Promise<ContainerSummary[]> {
  const filters = JSON.stringify({ label: labels, status: ['running', 'paused', 'restarting'] });
  const reply = await dockerRequest(socketPath, 'GET', `/containers/json?all=1&filters=${encodeURIComponent(filters)}`);
  if (reply.status !== 200)
    throw new Error(`Docker API list containers: HTTP ${reply.status} ${reply.body.slice(0, 200)}`);
  return JSON.parse(reply.body) as ContainerSummary[];
}

/** SIGKILL; a container that is already gone or stopped counts as killed. */
export async function killContainer(socketPath: string, id: string): Promise<void> {
  const reply = await dockerRequest(socketPath, 'POST', `/containers/${encodeURIComponent(id)}/kill?signal=SIGKILL`);
  if (reply.status === 204 || reply.status === 404 || reply.status === 409) return;
  throw new Error(`Docker API kill ${id.slice(0, 12)}: HTTP ${reply.status} ${reply.body.slice(0, 200)}`);
}

export async function dockerReachable(socketPath: string): Promise<boolean> {
  try {
    return (await dockerRequest(socketPath, 'GET', '/_ping', 3000)).status === 200;
  } catch {
    return false;
  }
}
