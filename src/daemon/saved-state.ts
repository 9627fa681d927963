import { existsSync, readFileSync, renameSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { ENDPOINTS, NETWORKS, sandboxesOf, SERVICES, TASKS } from '../cluster/keys.js';
import type { EndpointObject, NetworkObject, SandboxObject, ServiceObject, TaskObject } from '../cluster/objects.js';
import { FileStore } from '../store/file-store.js';
import type { KeyValue, Store } from '../store/store.js';
import { hostIfName } from './dataplane.js';
import { clusterObjects, diff, fromStored, localObjects, serialized, type LocalSandbox } from './state-codec.js';
import type { DaemonState } from './state.js';

/** The cluster store (every node's objects) and this host's own local store. */
export interface StateStores {
  cluster: Store;
  local: Store;
  node: string;
}

const NODE_KEY = 'node';

/**
 * The node name a state directory belongs to: given once (`--node`, else the host name) and
 * kept, so sandboxes stay this node's after a rename of the host; another name is refused.
 */
export async function nodeName(local: Store, requested: string | undefined): Promise<string> {
  const kept = await local.get<string>(NODE_KEY);
  if (kept !== undefined) {
    if (requested !== undefined && requested !== kept.value) throw new Error(`--node ${requested}: this state directory belongs to node ${kept.value}`);
    return kept.value;
  }
  const name = requested ?? hostname();
  await local.txn([{ key: NODE_KEY, modRevision: 0 }], [{ op: 'put', key: NODE_KEY, value: name }]);
  return name;
}

/** The embedded stores under a state directory: `store/` (cluster objects) and `local/`. */
export async function openFileStores(stateDir: string, node?: string): Promise<StateStores> {
  const local = await FileStore.open({ dir: join(stateDir, 'local') });
  const cluster = await FileStore.open({ dir: join(stateDir, 'store') });
  return { cluster, local, node: await nodeName(local, node) };
}

/** The state file of daemons before the store: imported once, then kept beside as `.imported`. */
function legacyState(stateDir: string): DaemonState | undefined {
  const file = join(stateDir, 'state.json');
  if (!existsSync(file)) return undefined;
  const state = JSON.parse(readFileSync(file, 'utf8')) as DaemonState;
  if (state.version !== 1) throw new Error(`store: ${file}: unknown version ${String(state.version)}`);
  return state;
}

/**
 * This node's working state as the stores hold it, and the writer of its later changes: each
 * save writes only the keys that changed since the last (one transaction per store, host-local
 * facts first, so a crash between them leaves local facts the next save removes).
 */
export class SavedState {
  #cluster = new Map<string, string>();
  #local = new Map<string, string>();

  private constructor(readonly stores: StateStores) {}

  static async load(stores: StateStores, { stateDir, netnsPrefix, readOnly = false }: { stateDir: string; netnsPrefix: string; readOnly?: boolean }): Promise<{ saved: SavedState; state: DaemonState }> {
    const saved = new SavedState(stores);
    const [{ kvs }, { kvs: localKvs }] = await Promise.all([stores.cluster.list(''), stores.local.list('')]);
    const under = <T>(prefix: string): KeyValue<T>[] => kvs.filter((kv) => kv.key.startsWith(prefix)) as KeyValue<T>[];
    const endpoints = under<EndpointObject>(ENDPOINTS).filter((kv) => kv.value.node === stores.node);
    const mine = [...under<NetworkObject>(NETWORKS), ...under<SandboxObject>(sandboxesOf(stores.node)), ...endpoints, ...under<ServiceObject>(SERVICES), ...under<TaskObject>(TASKS)];
    saved.#cluster = new Map(mine.map((kv) => [kv.key, JSON.stringify(kv.value)]));
    const local = localKvs.filter((kv) => kv.key !== NODE_KEY) as KeyValue<LocalSandbox>[];
    saved.#local = new Map(local.map((kv) => [kv.key, JSON.stringify(kv.value)]));
    const legacy = mine.length === 0 ? legacyState(stateDir) : undefined;
    if (legacy !== undefined && readOnly) return { saved, state: legacy };
    if (legacy !== undefined) {
      await saved.save(legacy);
      renameSync(join(stateDir, 'state.json'), join(stateDir, 'state.json.imported'));
      return { saved, state: legacy };
    }
    const state = fromStored(
      { networks: under(NETWORKS), sandboxes: under(sandboxesOf(stores.node)), services: under(SERVICES), tasks: under(TASKS), local },
      stores.node,
      { netnsPrefix, hostIf: hostIfName },
    );
    return { saved, state };
  }

  /** Writes what changed since the last save; resolves with the cluster store's revision after it. */
  async save(state: DaemonState): Promise<number> {
    const local = serialized(localObjects(state));
    const localOps = diff(this.#local, local);
    if (localOps.length > 0) await this.stores.local.txn([], localOps);
    this.#local = local;
    const cluster = serialized(clusterObjects(state, this.stores.node));
    const ops = diff(this.#cluster, cluster);
    const revision = ops.length === 0 ? 0 : (await this.stores.cluster.txn([], ops)).revision;
    this.#cluster = cluster;
    return revision;
  }
}

/**
 * The state a daemon's directory holds, read without writing anything (the daemon may be running
 * or dead): for tools and tests that check what was saved.
 */
export async function readSavedState(stateDir: string, netnsPrefix = 'tsnet-'): Promise<DaemonState> {
  const local = await FileStore.open({ dir: join(stateDir, 'local'), readOnly: true });
  const cluster = await FileStore.open({ dir: join(stateDir, 'store'), readOnly: true });
  try {
    const node = (await local.get<string>(NODE_KEY))?.value ?? hostname();
    return (await SavedState.load({ cluster, local, node }, { stateDir, netnsPrefix, readOnly: true })).state;
  } finally {
    await Promise.all([local.close(), cluster.close()]);
  }
}

/** Replaces what a stopped daemon's directory holds with `edit(state)`: tests simulating a crash between kernel and store. */
export async function editSavedState(stateDir: string, edit: (state: DaemonState) => DaemonState, netnsPrefix = 'tsnet-'): Promise<void> {
  const stores = await openFileStores(stateDir);
  try {
    const { saved, state } = await SavedState.load(stores, { stateDir, netnsPrefix });
    await saved.save(edit(state));
  } finally {
    await Promise.all([stores.local.close(), stores.cluster.close()]);
  }
}
