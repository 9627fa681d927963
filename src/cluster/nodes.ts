import type { Lease, LeaseId, Store } from '../store/store.js';
import { nodeKey } from './keys.js';
import type { NodeObject } from './objects.js';

/**
 * A node's membership of the cluster: its node key under a lease that the store keeps alive,
 * and every other key it owns (endpoints, tasks) under the same lease, so all of them leave
 * together when the node dies. When the lease is lost while the node lives (cut off from the
 * store past the TTL), every owned key is gone from the store: the membership grants a new
 * lease and writes them all again.
 */

const fail = (message: string): Error => new Error(`cluster/nodes: ${message}`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface JoinOptions {
  name: string;
  /** The address other nodes reach this one at. */
  address: string;
  /** Seconds a dead node's keys outlive it (etcd grants no less than 2). */
  leaseTtl?: number;
  /**
   * How long to wait for a held node name to be freed before refusing: a daemon restarted
   * after a crash finds its old key until the old lease runs out.
   */
  waitMs?: number;
  /** Milliseconds between attempts to renew a lost lease while the store is unreachable. */
  retryMs?: number;
  /**
   * The lease this node held before it restarted (kept in its local store). A node key still
   * under it is taken over at once: the daemon that held it is dead, as the state directory's
   * lock says, and its keys can be moved to the new lease before the old one runs out.
   */
  previous?: LeaseId;
}

export type MembershipEvent =
  /** The lease ended without `leave`: every owned key is gone from the store until renewed. */
  | { type: 'lost'; lease: LeaseId }
  /** A new lease, with the node key and every owned key written again under it. */
  | { type: 'renewed'; lease: LeaseId; keys: number }
  /** A key claimed with `create` was taken by someone else while the lease was lost: it is no longer ours. */
  | { type: 'dropped'; key: string }
  /** Renewing failed (the store is unreachable); it is retried. */
  | { type: 'retrying'; error: Error }
  /** Another daemon took this node's name while the lease was lost: the membership is over. */
  | { type: 'evicted'; holder: NodeObject };

interface OwnedKey {
  value: unknown;
  /** A claim (CAS create): on renewal it is created again only if nobody took it meanwhile. */
  claim: boolean;
}

/** A lease and whether the store has reported it lost. */
interface Held {
  lease: Lease;
  lost: boolean;
}

export class Membership {
  #node: NodeObject;
  readonly #store: Store;
  readonly #ttl: number;
  readonly #retryMs: number;
  readonly #owned = new Map<string, OwnedKey>();
  readonly #handlers: ((e: MembershipEvent) => void)[] = [];
  /** Every lease this node was granted: a key under one of them is this node's. */
  readonly #mine = new Set<LeaseId>();
  /** The lease owned keys live under; undefined while a lost one is being renewed, and after `leave`. */
  #held: Held | undefined;
  /** The new lease a renewal is writing the keys under. */
  #renewal: Held | undefined;
  #left = false;
  /** Writes of owned keys and renewals run one at a time, so a renewal never overtakes a newer value. */
  #queue: Promise<unknown> = Promise.resolve();

  /** Use `joinCluster`. */
  constructor(store: Store, node: NodeObject, lease: Lease, { ttl, retryMs, previous }: { ttl: number; retryMs: number; previous?: LeaseId }) {
    this.#store = store;
    this.#node = node;
    this.#ttl = ttl;
    this.#retryMs = retryMs;
    if (previous !== undefined) this.#mine.add(previous);
    this.#held = this.#watchLoss(lease);
  }

  /** This node's record as last written (or to be written by a renewal). */
  get node(): NodeObject {
    return this.#node;
  }

  /**
   * Rewrites this node's record with `fields` changed (its WireGuard tunnel, up or down); the
   * name stays. While the lease is being renewed the renewal writes it.
   */
  async updateRecord(fields: Partial<Omit<NodeObject, 'name'>>): Promise<void> {
    this.#live();
    const next = { ...this.#node, ...fields } as NodeObject;
    // A field given as undefined is removed (JSON would drop it anyway; the comparisons must too).
    for (const [k, v] of Object.entries(fields)) if (v === undefined) delete (next as Partial<NodeObject>)[k as keyof NodeObject];
    this.#node = next;
    await this.#write(nodeKey(this.#node.name), this.#node, false);
  }

  /** The lease owned keys are written under now; undefined while it is being renewed. */
  get lease(): LeaseId | undefined {
    return this.#held?.lease.id;
  }

  onEvent(handler: (e: MembershipEvent) => void): void {
    this.#handlers.push(handler);
  }

  /** Writes `key` under the node's lease and keeps it there across lost leases (while renewing, the renewal writes it). */
  async put(key: string, value: unknown): Promise<void> {
    this.#live();
    const before = this.#owned.get(key);
    const entry = { value, claim: false };
    this.#owned.set(key, entry);
    try {
      await this.#write(key, value, false);
    } catch (err) {
      // The caller learns the put failed; a later renewal must not write it behind their back.
      if (this.#owned.get(key) === entry && before === undefined) this.#owned.delete(key);
      else if (this.#owned.get(key) === entry && before !== undefined) this.#owned.set(key, before);
      throw err;
    }
  }

  /** Creates `key` under the node's lease if it does not exist (a task's slot): true when this node got it. */
  async create(key: string, value: unknown): Promise<boolean> {
    this.#live();
    return this.#write(key, value, true);
  }

  /** Deletes an owned key and forgets it. */
  async delete(key: string): Promise<void> {
    this.#live();
    this.#owned.delete(key);
    await this.#serial(() => this.#store.txn([], [{ op: 'delete', key }]));
  }

  /** The keys this node owns. */
  owned(): string[] {
    return [...this.#owned.keys()];
  }

  /** Revokes the lease: the node key and every owned key leave the store now. */
  async leave(): Promise<void> {
    if (this.#left) return;
    this.#left = true;
    const leases = [this.#held, this.#renewal].flatMap((h) => (h === undefined ? [] : [h.lease]));
    this.#held = undefined;
    await this.#serial(() => Promise.all(leases.map((l) => l.revoke())));
  }

  #live(): void {
    if (this.#left) throw fail(`node ${this.node.name} has left the cluster`);
  }

  #emit(e: MembershipEvent): void {
    for (const h of this.#handlers) h(e);
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /**
   * One owned write under the current lease. Without one (being renewed) a put waits in the
   * registry for the renewal, and a claim is refused; a put that fails because the lease was
   * lost under it is the renewal's to redo as well.
   */
  #write(key: string, value: unknown, claim: boolean): Promise<boolean> {
    return this.#serial(async () => {
      const held = this.#held;
      if (held === undefined) {
        if (claim) throw fail(`cannot claim ${key}: node ${this.node.name}'s lease is lost and being renewed`);
        return false;
      }
      try {
        if (!claim) return (await this.#store.txn([], [{ op: 'put', key, value, lease: held.lease.id }])).succeeded;
        // A claim retried after a failure whose outcome was unknown finds its own key: still ours.
        const claimed = await this.#claimUnder(held.lease, key, value);
        // Registered inside the queue, so a renewal queued after this claim knows of it.
        if (claimed) this.#owned.set(key, { value, claim });
        return claimed;
      } catch (err) {
        if (!claim && this.#held !== held) return false;
        throw err;
      }
    });
  }

  #watchLoss(lease: Lease): Held {
    this.#mine.add(lease.id);
    const held: Held = { lease, lost: false };
    lease.onLost(() => {
      held.lost = true;
      if (this.#left || this.#held !== held) return;
      this.#held = undefined;
      this.#emit({ type: 'lost', lease: lease.id });
      void this.#renew();
    });
    return held;
  }

  /** Grants a new lease and writes the node key and every owned key under it, retrying until the store answers. */
  async #renew(): Promise<void> {
    while (!this.#left && this.#held === undefined) {
      try {
        if (this.#renewal === undefined || this.#renewal.lost) this.#renewal = this.#watchLoss(await this.#store.grantLease(this.#ttl));
        const renewal = this.#renewal;
        await this.#serial(() => this.#rewrite(renewal));
      } catch (err) {
        this.#emit({ type: 'retrying', error: err as Error });
        await sleep(this.#retryMs);
      }
    }
  }

  /** Writes everything under `renewal`; safe to run again after it failed halfway. */
  async #rewrite(renewal: Held): Promise<void> {
    const { lease } = renewal;
    if (!(await this.#claimUnder(lease, nodeKey(this.node.name), this.node))) {
      const holder = await this.#store.get<NodeObject>(nodeKey(this.node.name));
      this.#left = true;
      this.#renewal = undefined;
      this.#emit({ type: 'evicted', holder: holder?.value ?? this.node });
      // Nothing was written under it but the attempt; if the store does not answer, it runs out.
      await lease.revoke().catch(() => undefined);
      return;
    }
    for (const [key, { value, claim }] of this.#owned) {
      if (!claim) await this.#store.txn([], [{ op: 'put', key, value, lease: lease.id }]);
      else if (!(await this.#claimUnder(lease, key, value))) {
        this.#owned.delete(key);
        this.#emit({ type: 'dropped', key });
      }
    }
    if (renewal.lost || this.#left) return;
    this.#held = renewal;
    this.#renewal = undefined;
    this.#emit({ type: 'renewed', lease: lease.id, keys: this.#owned.size });
  }

  /**
   * Creates `key` under `lease`, or moves it there when it is still under an older lease of
   * this node's (etcd restored after an outage keeps leases its owner gave up as lost); true too
   * when an earlier, interrupted attempt already did.
   */
  async #claimUnder(lease: Lease, key: string, value: unknown): Promise<boolean> {
    const put = { op: 'put', key, value, lease: lease.id } as const;
    if ((await this.#store.txn([{ key, modRevision: 0 }], [put])).succeeded) return true;
    const kv = await this.#store.get(key);
    if (kv?.lease === lease.id) return true;
    return kv?.lease !== undefined && this.#mine.has(kv.lease) && (await this.#store.txn([{ key, modRevision: kv.modRevision }], [put])).succeeded;
  }
}

/**
 * Joins the cluster as `name`: grants a lease and creates the node key under it. Refuses when a
 * live daemon holds the name (after waiting `waitMs` for a crashed one's key to expire).
 */
export async function joinCluster(store: Store, { name, address, leaseTtl = 10, waitMs = 0, retryMs = 1000, previous }: JoinOptions): Promise<Membership> {
  const node: NodeObject = { name, address, startedAt: new Date().toISOString() };
  const key = nodeKey(name);
  const lease = await store.grantLease(leaseTtl);
  const deadline = Date.now() + waitMs;
  try {
    for (;;) {
      const put = { op: 'put', key, value: node, lease: lease.id } as const;
      if ((await store.txn([{ key, modRevision: 0 }], [put])).succeeded) {
        return new Membership(store, node, lease, { ttl: leaseTtl, retryMs, ...(previous === undefined ? {} : { previous }) });
      }
      const holder = await store.get<NodeObject>(key);
      if (holder !== undefined && previous !== undefined && holder.lease === previous && (await store.txn([{ key, modRevision: holder.modRevision }], [put])).succeeded) {
        return new Membership(store, node, lease, { ttl: leaseTtl, retryMs, previous });
      }
      if (holder !== undefined && Date.now() >= deadline) {
        throw fail(`node name ${name} is held by a live daemon at ${holder.value.address} (started ${holder.value.startedAt}); its key leaves about one lease TTL after that daemon dies`);
      }
      await sleep(Math.min(500, Math.max(0, deadline - Date.now())));
    }
  } catch (err) {
    await lease.revoke().catch(() => undefined);
    throw err;
  }
}
