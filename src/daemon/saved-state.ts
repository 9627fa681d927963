import { existsSync, readFileSync, renameSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { ENDPOINTS, idOf, NETWORKS, sandboxesOf, SERVICES, TASKS } from '../cluster/keys.js';
import type { EndpointObject, NetworkObject, SandboxObject, ServiceObject, TaskObject } from '../cluster/objects.js';
import { FileStore } from '../store/file-store.js';
import type { KeyValue, Operation, Store } from '../store/store.js';
import { hostIfName } from './dataplane.js';
import { diff, fromStored, localSandbox, localSandboxKey, sandboxObjects, serialized, sharedObjects, type LocalSandbox, type Objects } from './state-codec.js';
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
 * save writes only the keys that changed (one transaction per store, host-local facts first,
 * so a crash between them leaves local facts the next save removes). A save told which
 * sandboxes changed looks at those alone, so its cost does not grow with the sandbox count.
 */
export class SavedState {
  /** Networks, services and tasks as last written. */
  #shared = new Map<string, string>();
  /** Sandbox id → its own cluster keys (itself, its endpoints) as last written. */
  #sandboxes: Written = new Map();
  /** Sandbox id → its local key as last written. */
  #local: Written = new Map();

  private constructor(readonly stores: StateStores) {}

  static async load(stores: StateStores, { stateDir, netnsPrefix, readOnly = false }: { stateDir: string; netnsPrefix: string; readOnly?: boolean }): Promise<{ saved: SavedState; state: DaemonState }> {
    const saved = new SavedState(stores);
    const [{ kvs }, { kvs: localKvs }] = await Promise.all([stores.cluster.list(''), stores.local.list('')]);
    const under = <T>(prefix: string): KeyValue<T>[] => kvs.filter((kv) => kv.key.startsWith(prefix)) as KeyValue<T>[];
    const sandboxes = under<SandboxObject>(sandboxesOf(stores.node));
    const endpoints = under<EndpointObject>(ENDPOINTS).filter((kv) => kv.value.node === stores.node);
    const shared = [...under<NetworkObject>(NETWORKS), ...under<ServiceObject>(SERVICES), ...under<TaskObject>(TASKS)];
    saved.#shared = new Map(shared.map((kv) => [kv.key, JSON.stringify(kv.value)]));
    remember(saved.#sandboxes, sandboxes, (kv) => kv.value.id);
    remember(saved.#sandboxes, endpoints, (kv) => kv.value.sandbox.id);
    const local = localKvs.filter((kv) => kv.key !== NODE_KEY) as KeyValue<LocalSandbox>[];
    remember(saved.#local, local, (kv) => idOf(kv.key));
    const legacy = shared.length + sandboxes.length === 0 ? legacyState(stateDir) : undefined;
    if (legacy !== undefined && readOnly) return { saved, state: legacy };
    if (legacy !== undefined) {
      await saved.save(legacy);
      renameSync(join(stateDir, 'state.json'), join(stateDir, 'state.json.imported'));
      return { saved, state: legacy };
    }
    const state = fromStored({ networks: under(NETWORKS), sandboxes, services: under(SERVICES), tasks: under(TASKS), local }, stores.node, { netnsPrefix, hostIf: hostIfName });
    return { saved, state };
  }

  /**
   * Writes what changed since the last save: networks and services always, and the sandboxes in
   * `touched` (every sandbox when it is not given, and any that left the state). Resolves with
   * the cluster store's revision after it.
   */
  async save(state: DaemonState, touched?: Iterable<string>): Promise<number> {
    const current = new Map(state.sandboxes.map((sb) => [sb.id, sb]));
    const ids = new Set(touched ?? current.keys());
    for (const written of [this.#sandboxes, this.#local]) for (const id of written.keys()) if (!current.has(id)) ids.add(id);
    const local = changes(ids, this.#local, (id) => {
      const sb = current.get(id);
      return sb === undefined ? new Map() : new Map([[localSandboxKey(id), localSandbox(sb)]]);
    });
    if (local.ops.length > 0) await this.stores.local.txn([], local.ops);
    local.commit();
    const shared = serialized(sharedObjects(state, this.stores.node));
    const own = changes(ids, this.#sandboxes, (id) => {
      const sb = current.get(id);
      return sb === undefined ? new Map() : sandboxObjects(sb, state.networks, this.stores.node);
    });
    const ops = [...diff(this.#shared, shared), ...own.ops];
    const revision = ops.length === 0 ? 0 : (await this.stores.cluster.txn([], ops)).revision;
    this.#shared = shared;
    own.commit();
    return revision;
  }
}

/** Per sandbox id, its keys and their JSON as last written. */
type Written = Map<string, Map<string, string>>;

function remember<T>(written: Written, kvs: readonly KeyValue<T>[], sandboxOf: (kv: KeyValue<T>) => string): void {
  for (const kv of kvs) {
    const id = sandboxOf(kv);
    written.set(id, (written.get(id) ?? new Map<string, string>()).set(kv.key, JSON.stringify(kv.value)));
  }
}

/**
 * The writes that bring the sandboxes `ids` from what `written` holds to `objectsOf` them, and
 * `commit()` to record them as written once the store has them.
 */
function changes(ids: ReadonlySet<string>, written: Written, objectsOf: (id: string) => Objects): { ops: Operation[]; commit(): void } {
  const after = new Map([...ids].map((id) => [id, serialized(objectsOf(id))]));
  return {
    ops: [...after].flatMap(([id, next]) => diff(written.get(id) ?? new Map(), next)),
    commit: () => {
      for (const [id, next] of after) {
        if (next.size === 0) written.delete(id);
        else written.set(id, next);
      }
    },
  };
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
