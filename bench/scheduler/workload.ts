import type { InstanceRecord, Resources } from '@service-foundry/core';

function pick<T>(random: () => number, choices: ReadonlyArray<{ weight: number; value: T }>): T {
  const total = choices.reduce((n, c) => n + c.weight, 0);
  let roll = random() * total;
  for (const choice of choices) {
    roll -= choice.weight;
    if (roll < 0) return choice.value;
  }
  return (choices[choices.length - 1] as { value: T }).value;
}

export const zones = ['z1', 'z2', 'z3', 'z4'];

/** Node shapes: 70% 8 cpu / 32 GiB / 500 GB, 30% 16 cpu / 64 GiB / 1 TB, round-robin over 4 zones. */
export function nodeShape(random: () => number, index: number): { capacity: Resources; zone: string } {
  const big = random() < 0.3;
  return {
    capacity: big
      ? { cpuMillis: 16_000, memoryMb: 65_536, diskMb: 1_000_000 }
      : { cpuMillis: 8000, memoryMb: 32_768, diskMb: 500_000 },
    zone: zones[index % zones.length] ?? 'z1',
  };
}

const sizes: ReadonlyArray<{ weight: number; value: Resources }> = [
  { weight: 60, value: { cpuMillis: 250, memoryMb: 512, diskMb: 1024 } },
  { weight: 30, value: { cpuMillis: 1000, memoryMb: 2048, diskMb: 10_240 } },
  { weight: 10, value: { cpuMillis: 2000, memoryMb: 8192, diskMb: 51_200 } },
];
const replicaCounts: ReadonlyArray<{ weight: number; value: number }> = [
  { weight: 40, value: 1 },
  { weight: 20, value: 2 },
  { weight: 40, value: 3 },
];

/** Instances of mixed sizes (small/medium/large) and replica counts (1–3) adding up to `replicas`. */
export function instances(random: () => number, replicas: number): InstanceRecord[] {
  const out: InstanceRecord[] = [];
  let left = replicas;
  while (left > 0) {
    const count = Math.min(left, pick(random, replicaCounts));
    left -= count;
    const id = `bench-${String(out.length).padStart(6, '0')}`;
    out.push({
      id,
      name: id,
      serviceId: 'bench',
      planId: 'bench',
      serviceName: 'postgres',
      planName: 'small',
      parameters: {},
      replicas: count,
      resources: pick(random, sizes),
      routerPort: 0,
      context: {},
      createdAt: '',
      phase: 'provisioning',
      message: '',
      operation: { id: `op-${id}`, type: 'provision', state: 'in progress', description: '', startedAt: '' },
    });
  }
  return out;
}
