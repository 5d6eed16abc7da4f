/**
 * `npm run bench:relocation`: volume transfer figures on loopback.
 *
 * 1. Full transfer of a 1 GiB volume (incompressible) with the library, against a
 *    baseline measured in the same run: `tar -c | nc` into `nc -l | tar -x`. Three
 *    alternating rounds, medians compared; the receiver does not fsync (tar does not
 *    either). One more round with fsync (the library's default) for information.
 * 2. Delta: 10 MiB rewritten after a full copy; time and bytes of the incremental pull. Then
 *    the shape of a relocation's final round (final-round.ts): ~1,850 entries, one WAL
 *    segment (1 MiB) changed; and a pull with nothing changed, the fixed cost of a round.
 * 3. Planned relocation on the platform (`sf up`, three simulated nodes): a Postgres
 *    instance with 1 GiB in its volume, ~10 MB of rows written during the pre-copy, then
 *    `sf relocate`; downtime is what a client querying through the router sees (the
 *    longest time without a successful query), and the controller's own figure.
 *
 * SF_BENCH_KEEP_LOGS=DIR copies the platform's component logs (agents, controller, routers)
 * there before the cluster of step 3 is destroyed: where the downtime went, step by step.
 *
 * The last line is one JSON object: {"throughput_ratio_vs_tar_nc", "downtime_s",
 * "delta_bytes_sent"} (delta_bytes_sent: HTTP body bytes of the 10 MiB delta of step 2).
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pullSnapshot } from '../../packages/volumes/src/index.js';
import { measureFinalRound, median, walSegmentBytes } from './final-round.js';
import { measurePlatformRelocation } from './platform-downtime.js';
import { startServerProcess } from './server-process.js';
import { run } from './shell.js';
import { tarNc } from './tar-nc-baseline.js';
import { gib, makeGibVolume, mib, outlastRacyWindow, writeRandomFile } from './volume-data.js';

const rounds = 3;

function mbps(bytes: number, seconds: number): number {
  return bytes / 1e6 / seconds;
}

function log(line: string): void {
  process.stdout.write(`${line}\n`);
}

async function freshTarget(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  await rm(`${dir}.sf-transfer`, { recursive: true, force: true });
  // Write back the previous round's dirty pages now, not during the next measurement.
  await run('sync', []);
}

async function main(): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'sf-bench-relocation-'));
  const secret = randomBytes(24).toString('hex');
  try {
    const source = join(root, 'source');
    log(`generating a 1 GiB volume of incompressible data in ${source}`);
    const files = await makeGibVolume(source);
    await outlastRacyWindow();
    const server = await startServerProcess(source, secret);
    const target = join(root, 'target');
    const baseline: number[] = [];
    const ours: number[] = [];
    try {
      const cpu = { baseline: [] as number[], ours: [] as number[] };
      for (let round = 1; round <= rounds; round++) {
        await freshTarget(target);
        const tar = await tarNc(source, target);
        baseline.push(mbps(gib, tar.seconds));
        cpu.baseline.push(tar.cpuSeconds);
        await freshTarget(target);
        const serverCpu = await server.cpuSeconds();
        const clientCpu = process.cpuUsage();
        const started = process.hrtime.bigint();
        const result = await pullSnapshot({ url: server.url, secret, name: 'bench', into: target, fsync: false });
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        const used = process.cpuUsage(clientCpu);
        const ourCpu = (used.user + used.system) / 1e6 + (await server.cpuSeconds()) - serverCpu;
        ours.push(mbps(result.bytes, seconds));
        cpu.ours.push(ourCpu);
        log(
          `round ${round}: tar|nc ${tar.seconds.toFixed(2)} s (${mbps(gib, tar.seconds).toFixed(0)} MB/s, ` +
            `${tar.cpuSeconds.toFixed(2)} CPU s); library ${seconds.toFixed(2)} s (${mbps(result.bytes, seconds).toFixed(0)} MB/s, ` +
            `${ourCpu.toFixed(2)} CPU s, ${result.files} files, ${result.wireBytes} bytes on the wire)`,
        );
      }
      await freshTarget(target);
      const durable = await pullSnapshot({ url: server.url, secret, name: 'bench', into: target, fsync: true });
      log(
        `with fsync (the default): ${(durable.durationMs / 1000).toFixed(2)} s (${durable.mbPerSecond.toFixed(0)} MB/s)`,
      );

      // 10 MiB rewritten after the full copy above.
      for (const path of files.slice(-10)) await writeRandomFile(path, mib);
      await outlastRacyWindow();
      const delta = await pullSnapshot({ url: server.url, secret, name: 'bench', into: target });
      log(
        `delta after 10 MiB rewritten: ${delta.files} files, ${delta.bytes} content bytes, ${delta.wireBytes} bytes ` +
          `on the wire, ${(delta.durationMs / 1000).toFixed(3)} s (mode ${delta.mode})`,
      );
      const final = await measureFinalRound(source, target, server, secret);
      log(
        `final-round shape (${final.entries} entries, one ${walSegmentBytes / mib} MiB file and three 8 KiB files changed, fsync): ` +
          `delta ${final.deltaMs} ms, nothing changed ${final.idleMs} ms (medians of 3)`,
      );
      const ratio = median(ours) / median(baseline);
      log(
        `full 1 GiB: library median ${median(ours).toFixed(0)} MB/s, tar|nc median ${median(baseline).toFixed(0)} MB/s, ` +
          `ratio ${ratio.toFixed(2)} (target >= 0.9); CPU per GiB: library ${median(cpu.ours).toFixed(2)} s, ` +
          `tar|nc ${median(cpu.baseline).toFixed(2)} s (both ends; the machine's ${cpus().length} cores are shared)`,
      );
      await server.stop();

      let downtime: number | null = null;
      try {
        const relocation = await measurePlatformRelocation(log);
        downtime = relocation.clientDowntimeSeconds;
        log(`relocation: ${relocation.message}; ${relocation.rows} rows on the target`);
        log(
          `relocation downtime through the router (longest gap between successful queries): ${downtime.toFixed(2)} s ` +
            `(target <= 1 s); controller's figure (stop ordered -> route names the target): ` +
            `${relocation.controllerDowntimeSeconds.toFixed(2)} s`,
        );
      } catch (error) {
        log(`relocation downtime not measured: ${error instanceof Error ? error.message : String(error)}`);
      }
      log(
        JSON.stringify({
          throughput_ratio_vs_tar_nc: Math.round(ratio * 100) / 100,
          downtime_s: downtime === null ? null : Math.round(downtime * 100) / 100,
          delta_bytes_sent: delta.wireBytes,
        }),
      );
    } finally {
      await server.stop();
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

await main();
