import { runSimAgent } from './sim-agent.js';
import { parseAgentOptions } from './stdin-options.js';

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) return '';
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** The `fence_sf_sim` executable: options on stdin, the outcome as its exit code. */
export async function main(): Promise<void> {
  const options = parseAgentOptions(await readStdin());
  const code = await runSimAgent(options, {
    stdout: (line) => process.stdout.write(`${line}\n`),
    stderr: (line) => process.stderr.write(`${line}\n`),
  });
  process.exitCode = code;
}
