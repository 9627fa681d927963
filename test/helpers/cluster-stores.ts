// The stores cluster tests run against: a FileStore in a temp dir (one store, shared by every
// "client", as the daemon's concurrent requests share it) and a real etcd on loopback (one
// client per node). Everything is closed and removed when the test ends, pass or fail.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { EtcdStore } from '../../src/store/etcd-store.js';
import { FileStore } from '../../src/store/file-store.js';
import type { Store } from '../../src/store/store.js';
import { startEtcd, type TestEtcd } from './etcd.js';

export interface Backend {
  name: string;
  /** `clients` handles on one fresh, empty store. */
  open(t: ExecutionContext, clients?: number): Promise<Store[]>;
}

export const fileBackend: Backend = {
  name: 'file',
  async open(t, clients = 1) {
    const dir = mkdtempSync(join(tmpdir(), 'tsnet-cluster-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const store = await FileStore.open({ dir: join(dir, 'state') });
    t.teardown(() => store.close());
    return Array.from({ length: clients }, () => store);
  },
};

/** `clients` clients of one etcd, closed when the test ends. */
export function etcdClients(t: ExecutionContext, etcd: TestEtcd, clients = 1): Store[] {
  return Array.from({ length: clients }, () => {
    const store = new EtcdStore({ hosts: etcd.endpoints });
    t.teardown(() => store.close());
    return store;
  });
}

export const etcdBackend: Backend = {
  name: 'etcd',
  open: async (t, clients = 1) => etcdClients(t, await startEtcd(t), clients),
};

export const backends: readonly Backend[] = [fileBackend, etcdBackend];
