/**
 * The sending agent of the benchmark, in its own process like a real peer: serves one
 * directory as volume `bench` and prints `ready <url>`. Secret from SF_BENCH_SECRET.
 */
import { startVolumeServer } from '../../packages/volumes/src/index.js';

const dir = process.argv[2];
const secret = process.env.SF_BENCH_SECRET;
if (!dir || !secret) {
  process.stderr.write('usage: SF_BENCH_SECRET=… volume-server-process.ts DIR\n');
  process.exit(2);
}
const server = await startVolumeServer({ secret, resolveVolumeDir: (name) => (name === 'bench' ? dir : undefined) });
process.stdout.write(`ready ${server.url}\n`);
const stop = () => {
  void server.close().then(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
