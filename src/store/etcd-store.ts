import { circuitBreaker, ConsecutiveBreaker, ExponentialBackoff, handleWhen, isBrokenCircuitError, retry } from 'cockatiel';
import { Etcd3, isRecoverableError, type ICompare, type IRequestOp, type Lease as EtcdLease } from 'etcd3';
import { toKeyValue, watchEtcd } from './etcd-watch.js';
import { StoreUnavailableError, type Condition, type KeyValue, type Lease, type Operation, type Store, type StoreHealth, type TxnResult, type Watch, type WatchHandlers } from './store.js';

export interface EtcdStoreOptions {
  /** Client URLs, `http://host:port` (see `parseStoreUrl`). */
  hosts: string[];
  /** Where the store's keys live in etcd. */
  prefix?: string;
  /** How long one call may take, retries included, before it fails as unavailable. */
  callTimeoutMs?: number;
  /** How often reachability is probed while nothing else shows it. */
  probeIntervalMs?: number;
}

/** `etcd://h1:2379,h2:2379` → `['http://h1:2379', 'http://h2:2379']`; anything else is refused. */
export function parseStoreUrl(url: string): string[] {
  const m = /^etcd:\/\/([^/?#]+)\/?$/.exec(url);
  if (m === null) throw new Error(`store/etcd: ${JSON.stringify(url)}: expected etcd://host:port[,host:port...]`);
  return m[1]!.split(',').map((hostPort) => {
    const hp = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(hostPort);
    if (hp === null || Number(hp[2]) < 1 || Number(hp[2]) > 65535) throw new Error(`store/etcd: ${JSON.stringify(url)}: ${JSON.stringify(hostPort)} is not host:port`);
    return `http://${hostPort}`;
  });
}

/** Keys per page of a list: small enough for gRPC's 4 MiB limit with values of a few KB. */
const LIST_PAGE = 500;

/** The end of etcd's range of every key starting with `prefix`. */
function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]!++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

const isUnavailable = (err: unknown): boolean => err instanceof Error && (isRecoverableError(err) || isBrokenCircuitError(err));

/**
 * The cluster store on etcd 3 (the `etcd3` client): keys under `prefix`, values JSON, etcd's
 * revisions as numbers. A call that cannot reach a quorum rejects with StoreUnavailableError
 * within `callTimeoutMs`, and health goes 'down' until a probe gets through again.
 */
export class EtcdStore implements Store {
  readonly kind = 'etcd';
  readonly #client: Etcd3;
  readonly #prefix: string;
  readonly #callTimeoutMs: number;
  readonly #leases = new Set<EtcdLease>();
  readonly #watches = new Set<Watch>();
  readonly #healthHandlers: ((h: StoreHealth) => void)[] = [];
  readonly #probe: NodeJS.Timeout;
  #health: StoreHealth = 'up';
  #probing = false;

  constructor({ hosts, prefix = '/tsnet/v1/', callTimeoutMs = 2500, probeIntervalMs = 1000 }: EtcdStoreOptions) {
    if (hosts.length === 0) throw new Error('store/etcd: no hosts');
    this.#prefix = prefix;
    this.#callTimeoutMs = callTimeoutMs;
    const attemptMs = Math.floor(callTimeoutMs / 2);
    this.#client = new Etcd3({
      hosts,
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + attemptMs }),
      faultHandling: {
        // etcd3's defaults (a host's circuit open 5 s, watch reconnects backing off to 30 s) hold a
        // client off a member that is back within a second; these keep recovery near one probe.
        host: () => circuitBreaker(handleWhen(isRecoverableError), { halfOpenAfter: 1000, breaker: new ConsecutiveBreaker(3) }),
        global: retry(handleWhen(isRecoverableError), { maxAttempts: 2 }),
        // etcd3 takes a first step (an IBackoff) and steps on from it itself.
        watchBackoff: new ExponentialBackoff({ initialDelay: 50, maxDelay: 1000 }).next(),
      },
    });
    this.#probe = setInterval(() => void this.#probeOnce(), probeIntervalMs);
    this.#probe.unref();
  }

  get health(): StoreHealth {
    return this.#health;
  }

  async get<T = unknown>(key: string): Promise<KeyValue<T> | undefined> {
    const res = await this.#call(`get ${key}`, () => this.#client.kv.range({ key: this.#key(key) }));
    const kv = res.kvs[0];
    return kv === undefined ? undefined : (toKeyValue(this.#prefix, kv) as KeyValue<T>);
  }

  /**
   * Every key under `prefix` as of one revision, read in pages: one answer for all of them
   * would pass gRPC's 4 MiB message limit near 10k endpoints. The pages after the first are read
   * at the first one's revision, so the list is one snapshot (a compaction in between fails it).
   */
  async list<T = unknown>(prefix: string): Promise<{ kvs: KeyValue<T>[]; revision: number }> {
    const start = this.#key(prefix);
    const end = prefixEnd(start);
    const kvs: KeyValue<T>[] = [];
    let revision: number | undefined;
    for (let from = start; ; ) {
      const at = revision;
      const res = await this.#call(`list ${prefix}`, () => this.#client.kv.range({ key: from, range_end: end, limit: LIST_PAGE, sort_target: 'Key', sort_order: 'Ascend', ...(at === undefined ? {} : { revision: at }) }));
      revision ??= Number(res.header.revision);
      for (const kv of res.kvs) kvs.push(toKeyValue(this.#prefix, kv) as KeyValue<T>);
      const last = res.kvs.at(-1);
      if (!res.more || last === undefined) return { kvs, revision };
      from = Buffer.concat([last.key, Buffer.from([0])]);
    }
  }

  async txn(conditions: readonly Condition[], operations: readonly Operation[]): Promise<TxnResult> {
    // A missing key compares as revision 0 in etcd, so modRevision 0 is "absent" as it is.
    const compare: ICompare[] = conditions.map((c) => ({ key: this.#key(c.key), target: 'Mod', result: 'Equal', mod_revision: c.modRevision }));
    const success: IRequestOp[] = operations.map((op) => {
      if (op.op === 'delete') return { request_delete_range: { key: this.#key(op.key) } };
      const value = JSON.stringify(op.value) as string | undefined;
      if (value === undefined) throw new Error(`store/etcd: txn: the value of ${op.key} is not JSON`);
      return { request_put: { key: this.#key(op.key), value: Buffer.from(value), ...(op.lease === undefined ? {} : { lease: op.lease }) } };
    });
    const what = `txn on ${operations.map((op) => op.key).join(', ')}`;
    const res = await this.#call(what, () => this.#client.kv.txn({ compare, success, failure: [] }));
    return { succeeded: res.succeeded, revision: Number(res.header.revision) };
  }

  watch(prefix: string, fromRevision: number, handlers: WatchHandlers): Watch {
    const watch = watchEtcd(this.#client, this.#prefix, prefix, fromRevision, {
      events: handlers.events,
      reset: (reason) => (this.#watches.delete(watch), handlers.reset(reason)),
    });
    this.#watches.add(watch);
    return { close: () => (this.#watches.delete(watch), watch.close()) };
  }

  async grantLease(ttlSeconds: number): Promise<Lease> {
    const lease = this.#client.lease(ttlSeconds);
    this.#leases.add(lease);
    let id: string;
    try {
      id = await this.#call(`grant a lease of ${ttlSeconds} s`, () => lease.grant());
    } catch (err) {
      this.#leases.delete(lease);
      lease.release();
      throw err;
    }
    return this.#watchLease(lease, id, ttlSeconds);
  }

  onHealth(handler: (health: StoreHealth) => void): void {
    this.#healthHandlers.push(handler);
  }

  /** Leases are released, not revoked: their keys go one TTL later, as a dead node's would. */
  async close(): Promise<void> {
    clearInterval(this.#probe);
    for (const w of this.#watches) w.close();
    for (const l of this.#leases) l.release();
    this.#leases.clear();
    this.#client.close();
  }

  /**
   * etcd3 reports a lease lost only after twice its TTL without a keep-alive (§5.2 of the
   * multihost notes), while the cluster dropped its keys after one: so one TTL without a
   * keep-alive answered counts as lost here. If etcd kept it after all (an election renews
   * every lease), the owner's new lease and re-puts only move the keys.
   */
  #watchLease(lease: EtcdLease, id: string, ttlSeconds: number): Lease {
    const handlers: (() => void)[] = [];
    let lost = false;
    let lastAlive = Date.now();
    const lose = (): void => {
      if (lost) return;
      lost = true;
      clearInterval(timer);
      this.#leases.delete(lease);
      lease.release();
      for (const h of handlers) h();
    };
    const timer = setInterval(() => {
      if (Date.now() - lastAlive > ttlSeconds * 1000) lose();
    }, 200);
    timer.unref();
    lease.on('keepaliveSucceeded', () => (lastAlive = Date.now()));
    lease.on('lost', lose);
    return {
      id,
      ttlSeconds,
      revoke: async () => {
        clearInterval(timer);
        this.#leases.delete(lease);
        await this.#call(`revoke lease ${id}`, () => lease.revoke());
      },
      onLost: (handler) => (lost ? queueMicrotask(handler) : handlers.push(handler)),
    };
  }

  #key(key: string): Buffer {
    return Buffer.from(this.#prefix + key);
  }

  /** Runs one call under the overall deadline; unreachable becomes StoreUnavailableError and 'down'. */
  async #call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new StoreUnavailableError(`etcd: ${what}: no answer within ${this.#callTimeoutMs} ms`)), this.#callTimeoutMs);
    });
    try {
      const result = await Promise.race([fn(), deadline]);
      this.#setHealth('up');
      return result;
    } catch (err) {
      if (err instanceof StoreUnavailableError || isUnavailable(err)) {
        this.#setHealth('down');
        throw err instanceof StoreUnavailableError ? err : new StoreUnavailableError(`etcd: ${what}: ${(err as Error).message}`, { cause: err });
      }
      throw new Error(`store/etcd: ${what}: ${(err as Error).message}`, { cause: err });
    } finally {
      clearTimeout(timer);
    }
  }

  async #probeOnce(): Promise<void> {
    if (this.#probing) return;
    this.#probing = true;
    // A linearizable read needs a leader and a quorum, as a write does.
    await this.get('').catch(() => {});
    this.#probing = false;
  }

  #setHealth(health: StoreHealth): void {
    if (health === this.#health) return;
    this.#health = health;
    for (const h of this.#healthHandlers) h(health);
  }
}
