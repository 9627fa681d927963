import { randomBytes } from 'node:crypto';
import { FileLog, type Snapshot } from './file-log.js';
import type { Condition, KeyValue, Lease, LeaseId, Operation, Store, StoreEvent, StoreHealth, TxnResult, Watch, WatchHandlers } from './store.js';
import { WatchHub } from './watch-hub.js';

/** A key as held in memory and on disk: its value stays JSON text, so no caller shares it. */
interface Entry {
  key: string;
  json: string;
  createRevision: number;
  modRevision: number;
  lease?: LeaseId;
}

type Change = { put: string; json: string; lease?: LeaseId } | { del: string };

/** One log line: a transaction (with the revision it made), a lease granted, or a lease ended. */
interface LogRecord {
  seq: number;
  rev?: number;
  changes?: Change[];
  grant?: { id: LeaseId; ttl: number };
  revoke?: LeaseId;
}

interface State {
  revision: number;
  entries: Entry[];
  leases: { id: LeaseId; ttl: number }[];
}

export interface FileStoreOptions {
  /** The state directory (made 0700 if missing). */
  dir: string;
  /** The log is compacted into a snapshot once it is past this and twice the snapshot's size. */
  compactAfterBytes?: number;
  /** How many recent revisions a watch from the past can replay. */
  historyRevisions?: number;
  /**
   * Reads what is there and writes nothing, ever (no lease ends, no compaction): for a tool
   * looking at a directory a running daemon may be writing. Writes reject.
   */
  readOnly?: boolean;
}

const toKeyValue = (e: Entry): KeyValue => ({
  key: e.key,
  value: JSON.parse(e.json) as unknown,
  createRevision: e.createRevision,
  modRevision: e.modRevision,
  ...(e.lease === undefined ? {} : { lease: e.lease }),
});

/**
 * The embedded store for one host: state in memory, every change in an fsync'd log under `dir`
 * before it is acknowledged. Leases are kept alive by this process; those a previous process
 * left (it crashed or closed without revoking) end `ttl` seconds after open, as etcd would end a
 * dead node's.
 */
export class FileStore implements Store {
  readonly kind = 'file';
  readonly health: StoreHealth = 'up';
  readonly #entries = new Map<string, Entry>();
  readonly #leases = new Map<LeaseId, { ttl: number; keys: Set<string> }>();
  readonly #orphanTimers = new Set<NodeJS.Timeout>();
  readonly #dir: string;
  #revision = 1;
  #seq = 0;
  #log!: FileLog<LogRecord, State>;
  #hub!: WatchHub;
  #closed = false;
  #readOnly = false;
  /** A change that reached memory but not the disk: from then on memory cannot be trusted. */
  #broken: Error | undefined;

  private constructor(dir: string) {
    this.#dir = dir;
  }

  static async open({ dir, compactAfterBytes = 1 << 20, historyRevisions = 10_000, readOnly = false }: FileStoreOptions): Promise<FileStore> {
    const store = new FileStore(dir);
    store.#readOnly = readOnly;
    const { log, snapshot, records } = await FileLog.open<LogRecord, State>({ dir, compactAfterBytes, snapshotOf: () => store.#snapshot(), readOnly });
    store.#log = log;
    if (snapshot !== undefined) store.#load(snapshot);
    // Revisions from the log are replayable; those folded into the snapshot are not.
    store.#hub = new WatchHub({ revision: store.#revision, maxRevisions: historyRevisions });
    for (const record of records) {
      const events = store.#apply(record);
      if (record.rev !== undefined) store.#hub.publish(record.rev, events);
    }
    for (const [id, { ttl }] of readOnly ? [] : store.#leases) {
      const timer = setTimeout(() => {
        store.#orphanTimers.delete(timer);
        store.#endLease(id).catch(() => {}); // closed meanwhile: the next open starts the clock again
      }, ttl * 1000);
      timer.unref();
      store.#orphanTimers.add(timer);
    }
    return store;
  }

  async get<T = unknown>(key: string): Promise<KeyValue<T> | undefined> {
    this.#check();
    const e = this.#entries.get(key);
    return e === undefined ? undefined : (toKeyValue(e) as KeyValue<T>);
  }

  async list<T = unknown>(prefix: string): Promise<{ kvs: KeyValue<T>[]; revision: number }> {
    this.#check();
    const kvs = [...this.#entries.values()].filter((e) => e.key.startsWith(prefix)).map((e) => toKeyValue(e) as KeyValue<T>);
    kvs.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    return { kvs, revision: this.#revision };
  }

  async txn(conditions: readonly Condition[], operations: readonly Operation[]): Promise<TxnResult> {
    this.#check();
    const changes = operations.map((op) => this.#validate(op));
    const keys = new Set(operations.map((op) => op.key));
    if (keys.size < operations.length) throw new Error('store/file: txn: a key is given twice (etcd refuses that too)');
    if (!conditions.every((c) => (this.#entries.get(c.key)?.modRevision ?? 0) === c.modRevision)) return { succeeded: false, revision: this.#revision };
    // Deleting what is not there changes nothing, and a txn that changes nothing makes no revision.
    const effective = changes.filter((c) => !('del' in c) || this.#entries.has(c.del));
    if (effective.length === 0) return { succeeded: true, revision: this.#revision };
    const revision = this.#revision + 1;
    await this.#commit({ seq: 0, rev: revision, changes: effective });
    return { succeeded: true, revision };
  }

  watch(prefix: string, fromRevision: number, handlers: WatchHandlers): Watch {
    this.#check();
    return this.#hub.watch(prefix, fromRevision, handlers);
  }

  async grantLease(ttlSeconds: number): Promise<Lease> {
    this.#check();
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1) throw new Error(`store/file: lease TTL ${ttlSeconds}: a whole number of seconds, at least 1`);
    const id = randomBytes(8).toString('hex');
    await this.#commit({ seq: 0, grant: { id, ttl: ttlSeconds } });
    return {
      id,
      ttlSeconds,
      revoke: () => this.#endLease(id),
      // This process keeps its own leases alive: only its end ends them, and then nobody is left to tell.
      onLost: () => {},
    };
  }

  onHealth(): void {}

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const timer of this.#orphanTimers) clearTimeout(timer);
    this.#hub.closeAll();
    await this.#log.close();
  }

  #check(): void {
    if (this.#closed) throw new Error(`store/file: ${this.#dir}: closed`);
    if (this.#broken !== undefined) throw this.#broken;
  }

  #validate(op: Operation): Change {
    if (op.op === 'delete') return { del: op.key };
    const json = JSON.stringify(op.value) as string | undefined;
    if (json === undefined) throw new Error(`store/file: txn: the value of ${op.key} is not JSON`);
    if (op.lease === undefined) return { put: op.key, json };
    if (!this.#leases.has(op.lease)) throw new Error(`store/file: txn: lease ${op.lease} of ${op.key} not found (revoked or expired)`);
    return { put: op.key, json, lease: op.lease };
  }

  /** Applies a record now (so later txns see it) and resolves once it is on disk; then watchers hear of it. */
  async #commit(record: LogRecord): Promise<void> {
    if (this.#readOnly) throw new Error(`store/file: ${this.#dir} was opened read-only`);
    record.seq = ++this.#seq;
    const events = this.#apply(record);
    await this.#log.append(record).catch((err: Error) => {
      this.#broken = err;
      throw err;
    });
    if (record.rev !== undefined) this.#hub.publish(record.rev, events);
  }

  async #endLease(id: LeaseId): Promise<void> {
    this.#check();
    const lease = this.#leases.get(id);
    if (lease === undefined) return;
    const changes = [...lease.keys].map((del) => ({ del }));
    await this.#commit({ seq: 0, revoke: id, ...(changes.length > 0 ? { rev: this.#revision + 1, changes } : {}) });
  }

  /** The one place state changes, for a live txn and for a record replayed at open alike. */
  #apply(record: LogRecord): StoreEvent[] {
    this.#seq = Math.max(this.#seq, record.seq);
    if (record.grant !== undefined) this.#leases.set(record.grant.id, { ttl: record.grant.ttl, keys: new Set() });
    const events: StoreEvent[] = [];
    if (record.rev !== undefined) {
      this.#revision = record.rev;
      for (const change of record.changes ?? []) events.push(this.#change(change, record.rev));
    }
    if (record.revoke !== undefined) this.#leases.delete(record.revoke);
    return events;
  }

  #change(change: Change, rev: number): StoreEvent {
    const key = 'del' in change ? change.del : change.put;
    const old = this.#entries.get(key);
    if (old?.lease !== undefined) this.#leases.get(old.lease)?.keys.delete(key);
    const prev = old === undefined ? {} : { prev: toKeyValue(old) };
    if ('del' in change) {
      this.#entries.delete(key);
      return { type: 'delete', key, revision: rev, ...prev };
    }
    const entry: Entry = { key, json: change.json, createRevision: old?.createRevision ?? rev, modRevision: rev };
    if (change.lease !== undefined) {
      entry.lease = change.lease;
      this.#leases.get(change.lease)?.keys.add(key);
    }
    this.#entries.set(key, entry);
    return { type: 'put', kv: toKeyValue(entry), ...prev };
  }

  #snapshot(): Snapshot<State> {
    return {
      version: 1,
      seq: this.#seq,
      state: { revision: this.#revision, entries: [...this.#entries.values()], leases: [...this.#leases].map(([id, { ttl }]) => ({ id, ttl })) },
    };
  }

  #load({ seq, state }: Snapshot<State>): void {
    this.#seq = seq;
    this.#revision = state.revision;
    for (const { id, ttl } of state.leases) this.#leases.set(id, { ttl, keys: new Set() });
    for (const e of state.entries) {
      this.#entries.set(e.key, e);
      if (e.lease !== undefined) this.#leases.get(e.lease)?.keys.add(e.key);
    }
  }
}
