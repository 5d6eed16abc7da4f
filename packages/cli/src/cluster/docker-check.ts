import { request } from 'node:http';
import { DockerError } from '@service-foundry/core';

/** Fails with a hint when no Docker Engine answers on the socket. */
export async function checkDocker(socketPath = process.env.DOCKER_SOCKET ?? '/var/run/docker.sock'): Promise<void> {
  const ok = await new Promise<boolean>((resolve) => {
    const req = request({ socketPath, path: '/_ping', timeout: 5000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
  if (!ok) {
    throw new DockerError(
      `no Docker Engine answers on ${socketPath}: install docker.io and start dockerd (\`bash scripts/setup.sh\` does both)`,
    );
  }
}
