/**
 * One node's real volume server (the agent's, `@service-foundry/volumes`) in its own
 * process, so a test can pause it (SIGSTOP) as a stopped agent would be. Prints the URL
 * it serves on its first line. argv: cert file, key file, CA file.
 */
import { startVolumeServer } from '@service-foundry/volumes';

const [certFile, keyFile, caFile] = process.argv.slice(2);
if (!certFile || !keyFile || !caFile) throw new Error('usage: alive-server-child CERT KEY CA');
const server = await startVolumeServer({
  secret: 'x'.repeat(32),
  resolveVolumeDir: () => undefined,
  clientNamePattern: /^sf-volumes\./,
  tls: { certFile, keyFile, caFile },
});
process.stdout.write(`${server.url}\n`);
