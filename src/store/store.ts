/**
 * The daemon's store: keyed JSON objects with revisions, compare-and-swap transactions,
 * watches that resume from a revision, and leases for what belongs to one node. Two backends
 * implement it: `FileStore` (embedded, one host, the default) and `EtcdStore` (etcd 3, a
 * cluster). Both pass the same case suite (`store.case.ts`, run by each backend's test file).
 *
 * Revisions are etcd's: one counter for the whole store, raised by one for every transaction
 * that changes something; every key remembers the revision that created it and the one that
 * last changed it. Keys are plain strings under the store's own prefix (which a backend adds
 * and strips: callers never see it).
 */

export type LeaseId = string;

export interface KeyValue<T = unknown> {
  key: string;
  value: T;
  /** The revision that created the key (0 never: a key that exists was created). */
  createRevision: number;
  /** The revision that last wrote it. */
  modRevision: number;
  /** The lease the key lives under, if any: it goes when the lease does. */
  lease?: LeaseId;
}

/** A condition of a transaction, on one key's last write (0: the key does not exist). */
export interface Condition {
  key: string;
  modRevision: number;
}

export type Operation =
  | { op: 'put'; key: string; value: unknown; lease?: LeaseId }
  | { op: 'delete'; key: string };

export interface TxnResult {
  /** False when a condition failed: then nothing was written. */
  succeeded: boolean;
  /** The store's revision after the transaction (unchanged when it failed or wrote nothing). */
  revision: number;
}

export type StoreEvent =
  | { type: 'put'; kv: KeyValue; prev?: KeyValue }
  /** `prev` is the value deleted: what a watcher needs to undo it. */
  | { type: 'delete'; key: string; revision: number; prev?: KeyValue };

export interface WatchHandlers {
  /** Events of one revision (one transaction), in order; revisions arrive in increasing order. */
  events(events: readonly StoreEvent[], revision: number): void;
  /**
   * The watch cannot resume from where it was (the history was compacted): the watcher must
   * list again from scratch and compare with what it holds. The watch stays closed after this.
   */
  reset(reason: string): void;
}

export interface Watch {
  close(): void;
}

export interface Lease {
  readonly id: LeaseId;
  readonly ttlSeconds: number;
  /** Ends the lease now: every key under it is deleted. */
  revoke(): Promise<void>;
  /**
   * Called once if the lease ended without `revoke` (its keep-alives failed past the TTL): its
   * keys are gone, and the owner must grant a new lease and write them again.
   */
  onLost(handler: () => void): void;
}

export type StoreHealth = 'up' | 'down';

export interface Store {
  /** What kind of store, for logs and `node ls`: 'file' or 'etcd'. */
  readonly kind: string;
  get<T = unknown>(key: string): Promise<KeyValue<T> | undefined>;
  /** Every key under `prefix`, sorted by key, and the revision they were read at. */
  list<T = unknown>(prefix: string): Promise<{ kvs: KeyValue<T>[]; revision: number }>;
  /** All conditions hold, then all operations apply atomically; else nothing does. */
  txn(conditions: readonly Condition[], operations: readonly Operation[]): Promise<TxnResult>;
  /**
   * Every change under `prefix` after `fromRevision` (pass the revision a `list` returned),
   * delivered in order; across a lost connection it resumes without missing or repeating any.
   */
  watch(prefix: string, fromRevision: number, handlers: WatchHandlers): Watch;
  /** A lease kept alive until revoked or lost. */
  grantLease(ttlSeconds: number): Promise<Lease>;
  /** Reports when the store becomes unreachable and when it is back (etcd; the file store is always up). */
  onHealth(handler: (health: StoreHealth) => void): void;
  readonly health: StoreHealth;
  close(): Promise<void>;
}

/** A store refused a change because it cannot be reached: the API answers 503 for it. */
export class StoreUnavailableError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(`store: ${message}`, options);
    this.name = 'StoreUnavailableError';
  }
}

/** One put, unconditionally. */
export const put = (store: Store, key: string, value: unknown, lease?: LeaseId): Promise<TxnResult> =>
  store.txn([], [lease === undefined ? { op: 'put', key, value } : { op: 'put', key, value, lease }]);

/** Creates `key` only if it does not exist: true when this caller created it (an IPAM claim). */
export const create = async (store: Store, key: string, value: unknown, lease?: LeaseId): Promise<boolean> =>
  (await store.txn([{ key, modRevision: 0 }], [lease === undefined ? { op: 'put', key, value } : { op: 'put', key, value, lease }])).succeeded;

/** etcd refuses transactions of more than 128 operations (its --max-txn-ops default). */
const TXN_OPS = 100;

/**
 * Writes `ops` without conditions in transactions of at most TXN_OPS, one after another: for
 * writes too large for one transaction whose parts stand alone (a restart's rewrite, an import,
 * a removed node's leftovers). Resolves with the revision after the last.
 */
export async function writeInChunks(store: Store, ops: readonly Operation[]): Promise<number> {
  let revision = 0;
  for (let i = 0; i < ops.length; i += TXN_OPS) revision = (await store.txn([], ops.slice(i, i + TXN_OPS))).revision;
  return revision;
}
