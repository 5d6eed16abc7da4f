import { ClusterPki, type PkiNode, type TlsFiles } from '../../cli/src/cluster/pki.js';
import { makeTempDir } from './temp-dir.js';

export type { TlsFiles } from '../../cli/src/cluster/pki.js';

/** A cluster CA and node certificates made exactly as `sf up` makes them, in a temp folder. */
export interface TestPki {
  dir: string;
  caFile: string;
  /** The node's volume certificate (mutual TLS between agents). */
  volumeTls(node: string): TlsFiles;
  /** The node's service certificate (what its containers serve). */
  serviceTls(node: string): TlsFiles;
  /** A component's client identity (CN = the etcd user), made only with `clients: true`. */
  clientTls(user: string): TlsFiles;
  remove(): Promise<void>;
}

/**
 * A fresh CA (a real one, by `ClusterPki` and openssl) with the volume and service
 * certificates of `nodes`; service certificates also name `routerHosts`. Two calls make two
 * unrelated CAs: what a test of "another CA is refused" needs. Removed by `t.after` when a
 * test context is given, else by the caller.
 */
export async function makeTestPki(
  nodes: readonly PkiNode[],
  options: {
    routerHosts?: readonly string[];
    /** Also every component's client identity and etcd's certificate, as `sf up` makes them. @default false */
    clients?: boolean;
    t?: { after(fn: () => Promise<void>): void };
  } = {},
): Promise<TestPki> {
  const dir = await makeTempDir('sf-test-pki');
  options.t?.after(() => dir.remove());
  const pki = new ClusterPki(dir.path);
  try {
    const routerHosts = options.routerHosts ?? ['127.0.0.1'];
    if (options.clients) await pki.ensure(nodes, { routerHosts });
    else await pki.ensureNodeCertificates(nodes, { routerHosts });
  } catch (error) {
    await dir.remove();
    throw error;
  }
  return {
    dir: dir.path,
    caFile: pki.caFile,
    volumeTls: (node) => pki.volumeTls(node),
    serviceTls: (node) => pki.serviceTls(node),
    clientTls: (user) => pki.client(user),
    remove: () => dir.remove(),
  };
}
