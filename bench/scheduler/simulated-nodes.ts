import type { Etcd3, Keyspace, NodeRecord, Resources } from '@service-foundry/core';
import { json } from '@service-foundry/core';

/**
 * SIMULATION: stand-ins for node agents, in this process, without Docker. Each simulated
 * node registers its `nodes/<name>` record under a lease of its own, as a real agent does,
 * and the leases are kept alive on one keepalive stream (as etcd's Go client multiplexes
 * them). Nothing runs the assignments: the benchmark measures placement only.
 */
export class SimulatedNodes {
  readonly records: NodeRecord[] = [];
  #leases: string[] = [];
  #timer: NodeJS.Timeout | undefined;
  #stream: Awaited<ReturnType<Etcd3['leaseClient']['leaseKeepAlive']>> | undefined;

  constructor(
    private readonly client: Etcd3,
    private readonly keys: Keyspace,
    private readonly ttlSeconds = 30,
  ) {}

  async register(count: number, shapeOf: (index: number) => { capacity: Resources; zone: string }): Promise<void> {
    const batch = 50;
    for (let start = 0; start < count; start += batch) {
      const indexes = Array.from({ length: Math.min(batch, count - start) }, (_, i) => start + i);
      const leases = await Promise.all(
        indexes.map(() => this.client.leaseClient.leaseGrant({ TTL: this.ttlSeconds }).then((r) => r.ID)),
      );
      const records = indexes.map((index): NodeRecord => {
        const { capacity, zone } = shapeOf(index);
        const name = `sim-node-${String(index).padStart(4, '0')}`;
        return {
          name,
          address: '127.0.0.1',
          capacity,
          labels: { zone, simulated: 'true' },
          startedAt: new Date().toISOString(),
        };
      });
      const puts = records.map((record, i) =>
        this.client
          .put(this.keys.node(record.name))
          .value(json(record))
          .lease(leases[i] ?? ''),
      );
      await this.client
        .if(this.keys.node('sim-guard'), 'Version', '==', 0)
        .then(...puts)
        .commit();
      this.records.push(...records);
      this.#leases.push(...leases);
    }
    this.#stream = await this.client.leaseClient.leaseKeepAlive();
    this.#stream.on('data', () => undefined);
    this.#stream.on('error', () => undefined);
    this.#timer = setInterval(
      () => {
        for (const id of this.#leases) this.#stream?.write({ ID: id });
      },
      (this.ttlSeconds * 1000) / 3,
    );
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#stream?.end();
    await Promise.all(this.#leases.map((ID) => this.client.leaseClient.leaseRevoke({ ID }).catch(() => undefined)));
  }
}
