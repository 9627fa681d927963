import { existsSync, readFileSync, renameSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { ENDPOINTS, idOf, NETWORKS, sandboxesOf, SERVICES, taskKey, TASKS } from '../cluster/keys.js';
import { visibleOn, type EndpointObject, type NetworkObject, type SandboxObject, type ServiceObject, type TaskObject } from '../cluster/objects.js';
import { FileStore } from '../store/file-store.js';
import { StoreUnavailableError, writeInChunks, type KeyValue, type LeaseId, type Operation, type Store } from '../store/store.js';
import { hostIfName } from './dataplane.js';
import { legacyShared } from './cluster-writes.js';
import { diff, fromStored, localSandbox, localSandboxKey, sandboxObjects, serialized, type LocalSandbox, type Objects } from './state-codec.js';
import { serviceRecord } from './services.js';
import type { DaemonState, NetworkRecord, SandboxRecord } from './state.js';

/** The cluster store (every node's objects) and this host's own local store. */
export interface StateStores {
  cluster: Store;
  local: Store;
  node: string;
}

const NODE_KEY = 'node';
/** The lease this node last held, so that a restart takes its keys over instead of waiting them out. */
const LEASE_KEY = 'lease';
/** Local facts of a sandbox live at `localSandboxKey`, under this prefix; a task's local copy at its cluster key. */
const LOCAL_SANDBOXES = localSandboxKey('');
/** A put under `lease`, or without one (a store not yet joined: tools editing a stopped daemon's directory). */
const putUnder = (lease: LeaseId | undefined, key: string, value: unknown): Operation => ({ op: 'put', key, value, ...(lease === undefined ? {} : { lease }) });

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

/** The local store under a state directory, and the embedded cluster store beside it unless another is given. */
export async function openStores(stateDir: string, { node, cluster }: { node?: string; cluster?: Store } = {}): Promise<StateStores> {
  const local = await FileStore.open({ dir: join(stateDir, 'local') });
  try {
    return { cluster: cluster ?? (await FileStore.open({ dir: join(stateDir, 'store') })), local, node: await nodeName(local, node) };
  } catch (err) {
    await local.close();
    throw err;
  }
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
 * What this node writes of its own, and the writer of it: its sandboxes (with their endpoints)
 * and its tasks. Endpoints and tasks live under the node's lease, so they leave every answer
 * when the node dies, and `reregister()` writes them all again under a new one. Each save writes
 * only the keys that changed (host-local facts first, so a crash between the two writes leaves
 * local facts the next save removes); told which sandboxes changed, it looks at those alone.
 */
export class SavedState {
  /** Sandbox id → its own cluster keys (itself, its endpoints) as last written. */
  #sandboxes: Written = new Map();
  /** Sandbox id → its local key as last written. */
  #local: Written = new Map();
  /** This node's tasks by key, also kept in the local store so that they outlive an expired lease. */
  readonly #tasks = new Map<string, TaskObject>();
  #lease: (() => LeaseId | undefined) | undefined;

  private constructor(readonly stores: StateStores) {}

  get node(): string {
    return this.stores.node;
  }

  /**
   * This node's sandboxes as the stores hold them; a state file from before the store is
   * returned as `legacy` for `importLegacy` (once the node has its lease).
   */
  static async load(stores: StateStores, { stateDir, netnsPrefix }: { stateDir: string; netnsPrefix: string }): Promise<{ saved: SavedState; sandboxes: SandboxRecord[]; legacy?: DaemonState; previousLease?: LeaseId }> {
    const saved = new SavedState(stores);
    const [own, endpoints, tasks, { kvs: localKvs }] = await Promise.all([
      stores.cluster.list<SandboxObject>(sandboxesOf(stores.node)),
      stores.cluster.list<EndpointObject>(ENDPOINTS),
      stores.cluster.list<TaskObject>(TASKS),
      stores.local.list(''),
    ]);
    remember(saved.#sandboxes, own.kvs, (kv) => kv.value.id);
    remember(saved.#sandboxes, endpoints.kvs.filter((kv) => kv.value.node === stores.node), (kv) => kv.value.sandbox.id);
    const local = localKvs.filter((kv) => kv.key.startsWith(LOCAL_SANDBOXES)) as KeyValue<LocalSandbox>[];
    remember(saved.#local, local, (kv) => idOf(kv.key));
    // The local copies first: a task whose lease ran out is this node's still.
    for (const kv of localKvs.filter((kv) => kv.key.startsWith(TASKS)) as KeyValue<TaskObject>[]) saved.#tasks.set(kv.key, kv.value);
    for (const kv of tasks.kvs.filter((kv) => kv.value.node === stores.node)) saved.#tasks.set(kv.key, kv.value);
    const previous = localKvs.find((kv) => kv.key === LEASE_KEY)?.value as LeaseId | undefined;
    const leased = previous === undefined ? {} : { previousLease: previous };
    const hasCluster = own.kvs.length > 0 || (await stores.cluster.list(NETWORKS)).kvs.some((kv) => (kv.value as NetworkObject).node === stores.node);
    const legacy = hasCluster ? undefined : legacyState(stateDir);
    if (legacy !== undefined) return { saved, sandboxes: legacy.sandboxes, legacy, ...leased };
    return { saved, sandboxes: fromStored(own.kvs, local, { netnsPrefix, hostIf: hostIfName }), ...leased };
  }

  /** Where endpoints and tasks get their lease; recorded locally so a restart can take the keys over. */
  async useLease(current: () => LeaseId | undefined): Promise<void> {
    this.#lease = current;
    const id = current();
    if (id !== undefined) await this.stores.local.txn([], [{ op: 'put', key: LEASE_KEY, value: id }]);
  }

  /** Writes every endpoint and task of this node again under the current lease (after a restart, or a lease lost and renewed). */
  async reregister(): Promise<void> {
    const lease = this.#leaseId();
    const ops: Operation[] = [];
    for (const keys of this.#sandboxes.values()) for (const [key, text] of keys) if (key.startsWith(ENDPOINTS)) ops.push(putUnder(lease, key, JSON.parse(text) as unknown));
    for (const [key, task] of this.#tasks) if (task.slot === undefined) ops.push(putUnder(lease, key, task));
    await writeInChunks(this.stores.cluster, ops);
    const slots = [...this.#tasks].filter(([, task]) => task.slot !== undefined);
    const lost = (await Promise.all(slots.map(async ([key, task]) => ((await this.#reclaimSlot(key, task, lease)) ? [] : [key])))).flat();
    for (const key of lost) this.#tasks.delete(key);
    if (lost.length > 0) await this.stores.local.txn([], lost.map((key): Operation => ({ op: 'delete', key })));
    if (lease !== undefined) await this.stores.local.txn([], [{ op: 'put', key: LEASE_KEY, value: lease }]);
  }

  /**
   * Writes a replica's slot task again unless another node took the slot while this one was away
   * (then it is that node's: given up, not overwritten). Conditioned on what was read, so a node
   * claiming the slot between the read and the write still wins it.
   */
  async #reclaimSlot(key: string, task: TaskObject, lease: LeaseId | undefined): Promise<boolean> {
    for (;;) {
      const held = await this.stores.cluster.get<TaskObject>(key);
      if (held !== undefined && held.value.node !== this.node) return false;
      if ((await this.stores.cluster.txn([{ key, modRevision: held?.modRevision ?? 0 }], [putUnder(lease, key, task)])).succeeded) return true;
    }
  }

  /**
   * A state file's networks and services written to the cluster store as this node's, and its
   * sandboxes and tasks as this node's own; the file is then kept beside as `.imported`.
   */
  async importLegacy(legacy: DaemonState, stateDir: string): Promise<number> {
    await writeInChunks(this.stores.cluster, legacyShared(legacy, this.node));
    const networks = legacy.networks.map((n): NetworkRecord => ({ ...n, scope: 'local', node: this.node }));
    await this.writeTasks((legacy.services ?? []).flatMap((svc) => svc.tasks.map((t): TaskObject => ({ ...t, service: svc.id, node: this.node }))), []);
    const revision = await this.save(legacy.sandboxes, networks);
    renameSync(join(stateDir, 'state.json'), join(stateDir, 'state.json.imported'));
    return revision;
  }

  /** This node's tasks. */
  tasks(): TaskObject[] {
    return [...this.#tasks.values()];
  }

  /**
   * Puts and deletes tasks of this node (keys from `taskKey`) under its lease, with their local
   * copies; resolves with the cluster store's revision. `onlyNew` claims the puts' keys: when
   * one exists nothing is written and it resolves undefined.
   */
  async writeTasks(put: readonly TaskObject[], remove: readonly string[], onlyNew = false): Promise<number | undefined> {
    const lease = this.#leaseId();
    const puts = put.map((t): [string, TaskObject] => [taskKey(t.service, t.id), t]);
    const { succeeded, revision } = await this.stores.cluster.txn(onlyNew ? puts.map(([key]) => ({ key, modRevision: 0 })) : [], [
      ...puts.map(([key, value]) => putUnder(lease, key, value)),
      ...remove.map((key): Operation => ({ op: 'delete', key })),
    ]);
    if (!succeeded) return undefined;
    for (const [key, value] of puts) this.#tasks.set(key, value);
    for (const key of remove) this.#tasks.delete(key);
    // The copies after the store: a crash between leaves a task the next start writes again (or one the store already lost, which its slot's placement replaces).
    await this.stores.local.txn([], [...puts.map(([key, value]) => putUnder(undefined, key, value)), ...remove.map((key): Operation => ({ op: 'delete', key }))]);
    return revision;
  }

  /**
   * Writes what changed since the last save of the sandboxes in `touched` (every sandbox when it
   * is not given, and any that left). Resolves with the cluster store's revision after it.
   */
  async save(sandboxes: readonly SandboxRecord[], networks: readonly NetworkRecord[], touched?: Iterable<string>): Promise<number> {
    const current = new Map(sandboxes.map((sb) => [sb.id, sb]));
    const ids = new Set(touched ?? current.keys());
    for (const written of [this.#sandboxes, this.#local]) for (const id of written.keys()) if (!current.has(id)) ids.add(id);
    const local = changes(ids, this.#local, (id) => {
      const sb = current.get(id);
      return sb === undefined ? new Map() : new Map([[localSandboxKey(id), localSandbox(sb)]]);
    });
    if (local.ops.length > 0) await this.stores.local.txn([], local.ops);
    local.commit();
    const own = changes(ids, this.#sandboxes, (id) => {
      const sb = current.get(id);
      return sb === undefined ? new Map() : sandboxObjects(sb, networks, this.node);
    });
    if (own.ops.length === 0) return 0;
    const leased = (o: Operation): boolean => o.op === 'put' && o.key.startsWith(ENDPOINTS);
    const lease = own.ops.some(leased) ? this.#leaseId() : undefined;
    const ops = own.ops.map((o) => (o.op === 'put' && leased(o) ? putUnder(lease, o.key, o.value) : o));
    const { revision } = await this.stores.cluster.txn([], ops);
    own.commit();
    return revision;
  }

  #leaseId(): LeaseId | undefined {
    if (this.#lease === undefined) return undefined;
    const id = this.#lease();
    if (id === undefined) throw new StoreUnavailableError(`node ${this.node}: its lease is lost and being renewed; try again`);
    return id;
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
 * What a daemon's directory holds for its node, read without writing anything (the daemon may
 * be running or dead): for tools and tests that check what was saved. With `clusterStore` (the
 * daemon's `--store`, which the caller opens and closes) the shared part is read from there.
 */
export async function readSavedState(stateDir: string, netnsPrefix = 'tsnet-', clusterStore?: Store): Promise<DaemonState> {
  const local = await FileStore.open({ dir: join(stateDir, 'local'), readOnly: true });
  const cluster = clusterStore ?? (await FileStore.open({ dir: join(stateDir, 'store'), readOnly: true }));
  try {
    const node = (await local.get<string>(NODE_KEY))?.value ?? hostname();
    const [{ kvs }, { kvs: localKvs }] = await Promise.all([cluster.list(''), local.list('')]);
    const under = <T>(prefix: string): KeyValue<T>[] => kvs.filter((kv) => kv.key.startsWith(prefix)) as KeyValue<T>[];
    const tasks = under<TaskObject>(TASKS);
    return {
      version: 1,
      networks: under<NetworkObject>(NETWORKS).map((kv) => kv.value).filter((n) => visibleOn(n, node)),
      sandboxes: fromStored(under<SandboxObject>(sandboxesOf(node)), localKvs.filter((kv) => kv.key.startsWith(LOCAL_SANDBOXES)) as KeyValue<LocalSandbox>[], { netnsPrefix, hostIf: hostIfName }),
      services: under<ServiceObject>(SERVICES).map(({ value }) => serviceRecord(value, tasks.filter((t) => t.value.service === value.id).map((t) => t.value))),
    };
  } finally {
    await Promise.all([local.close(), clusterStore === undefined ? cluster.close() : undefined]);
  }
}

/** Replaces the sandboxes a stopped daemon's directory holds with `edit(state)`'s: tests simulating a crash between kernel and store. */
export async function editSavedState(stateDir: string, edit: (state: DaemonState) => DaemonState, netnsPrefix = 'tsnet-'): Promise<void> {
  const before = await readSavedState(stateDir, netnsPrefix);
  const stores = await openStores(stateDir);
  try {
    const { saved } = await SavedState.load(stores, { stateDir, netnsPrefix });
    const after = edit(before);
    await saved.save(after.sandboxes, after.networks);
  } finally {
    await Promise.all([stores.local.close(), stores.cluster.close()]);
  }
}
