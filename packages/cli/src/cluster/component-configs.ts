import { join } from 'node:path';
import { type EtcdTlsFiles, etcdUsers } from '@service-foundry/core';
import { nodeAgentMetricsPort } from '../metrics-endpoints.js';
import { type ClusterFile, etcdClientUrl, etcdMembersOf, routersOf } from './cluster-file.js';
import { etcdKeepalive } from './etcd-bootstrap.js';
import type { ClusterPki } from './pki.js';

/** Short leases: a lost node is noticed in ~3 s, which bounds failover time. */
const agentLeaseTtlSeconds = 3;

/**
 * etcd's shortest lease (1.5 election timeouts, rounded up): a standby scheduler leads
 * within ~2 s of the leader's death. A leader that misses its keepalives for that long
 * (paused, starved) only hands the lead over; every decision is a compare-and-swap.
 */
const schedulerLeaseTtlSeconds = 2;

/**
 * The config file of each component `sf up` starts. Each component gets its own etcd
 * identity (RBAC gives it only its keys) and, where it handles credentials, the secrets
 * key; with an external etcd all of them use the identity given to `sf up`.
 */
export class ComponentConfigs {
  /** Loopback `/metrics` port per component name; `sf up` fills it in (metrics-endpoints.ts). */
  metricsPorts: Record<string, number> = {};

  constructor(
    private readonly cluster: Readonly<ClusterFile>,
    private readonly pki: ClusterPki,
    private readonly stateDir: string,
  ) {}

  /** Every member's client URL: a client moves to another member when one is gone. */
  get etcdEndpoints(): string[] {
    return this.cluster.externalEtcd.length
      ? [...this.cluster.externalEtcd]
      : etcdMembersOf(this.cluster).map(etcdClientUrl);
  }

  etcdIdentity(user: string): EtcdTlsFiles | undefined {
    if (this.cluster.externalEtcd.length) return this.cluster.externalEtcdTls;
    return this.pki.client(user);
  }

  #metrics(name: string) {
    const port = this.metricsPorts[name];
    return port === undefined ? {} : { metrics: { host: '127.0.0.1', port } };
  }

  #common(user: string) {
    const tls = this.etcdIdentity(user);
    return {
      etcdEndpoints: this.etcdEndpoints,
      ...(tls ? { etcdTls: tls } : {}),
      // Its own members allow frequent pings; an external etcd's floor is not known.
      ...(this.cluster.externalEtcd.length ? {} : { etcdKeepaliveMs: etcdKeepalive.clientIntervalMs }),
      keyspaceRoot: this.cluster.keyspaceRoot,
    };
  }

  /** A scheduler (`schedulersOf`): all run the same config; the eldest leads (leader mode). */
  scheduler(name: string) {
    return {
      ...this.#common(etcdUsers.scheduler),
      secretsKeyFile: this.pki.secretsKeyFile,
      // Older clusters' one scheduler is the component `scheduler`, registered as scheduler-1.
      name: name === 'scheduler' ? 'scheduler-1' : name,
      mode: 'leader' as const,
      lockTtlSeconds: schedulerLeaseTtlSeconds,
      ...this.#metrics(name),
    };
  }

  /** One router (cluster-file.ts `routersOf`): all listen on the same ports, each on its address. */
  router(router: { name: string; host: string }) {
    return {
      ...this.#common(etcdUsers.router),
      listenHost: router.host,
      httpPort: this.cluster.routerHttpPort,
      ...this.#metrics(router.name),
    };
  }

  /** One broker (cluster-file.ts `brokersOf`): all alike but for the port. */
  broker(broker: { name: string; port: number }) {
    const c = this.cluster;
    return {
      ...this.#common(etcdUsers.broker),
      secretsKeyFile: this.pki.secretsKeyFile,
      host: '127.0.0.1',
      port: broker.port,
      osb: { username: c.osbUsername, password: c.osbPassword },
      operators: [
        { username: c.brokerUsername, password: c.brokerPassword, role: 'operator' },
        { username: c.viewerUsername, password: c.viewerPassword, role: 'viewer' },
      ],
      routerHost: c.routerHost,
      routerHosts: routersOf(c).map((r) => r.host),
      routerPortRange: { min: c.routerPortMin, max: c.routerPortMax },
      // The CA the services' certificates chain to: the broker's own sessions verify them,
      // and bindings hand it to apps.
      serviceCaFile: this.pki.caFile,
      ...this.#metrics(broker.name),
    };
  }

  /**
   * A node's agent. On an isolated node (`isolated`) it reaches etcd on the members' nodes'
   * addresses or this machine's segment address, runs containers on its node's own dockerd, and peers reach its
   * replicas at the node address and published port, as on separate hosts.
   */
  agent(
    node: { name: string; address: string },
    volumeSecret: string,
    isolated?: { etcdHost: string; dockerSocket: string },
  ) {
    const common = this.#common(etcdUsers.agent(node.name));
    return {
      ...common,
      ...(isolated
        ? {
            // Members inside nodes serve on their nodes' addresses; those on this machine, on its segment address.
            etcdEndpoints: etcdMembersOf(this.cluster).map((m) =>
              etcdClientUrl(m.node ? m : { ...m, host: isolated.etcdHost }),
            ),
            dockerSocket: isolated.dockerSocket,
            peerAddress: 'node' as const,
          }
        : {}),
      secretsKeyFile: this.pki.secretsKeyFile,
      node: node.name,
      address: node.address,
      clusterId: this.cluster.clusterId,
      leaseTtlSeconds: agentLeaseTtlSeconds,
      volumes: {
        secret: volumeSecret,
        port: 0,
        backupDir: join(this.stateDir, 'backups', node.name),
        tls: this.pki.volumeTls(node.name),
      },
      serviceTls: this.pki.serviceTls(node.name),
      // An isolated node is a host of its own: its agent serves metrics on its address.
      ...(isolated
        ? { metrics: { host: node.address, port: nodeAgentMetricsPort } }
        : this.#metrics(`agent-${node.name}`)),
    };
  }
}
