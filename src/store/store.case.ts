// The case suite every Store backend runs (not a test file of its own: ava's glob wants
// `*.test.ts`). Each backend's test file calls `storeCases` with a way to open a store.
import test, { type ExecutionContext } from 'ava';
import { create, put, writeInChunks, type Store, type StoreEvent, type Watch } from './store.js';

export interface OpenedStore {
  store: Store;
  /**
   * Closes `store` the way a dying owner would (its leases not revoked) and opens another on
   * the same data: a restart, or a second node taking over.
   */
  reopen(): Promise<Store>;
}

export interface StoreCaseOptions {
  /** A fresh, empty store of its own, closed when the test ends. */
  open(t: ExecutionContext): Promise<OpenedStore>;
  /** The shortest lease TTL the backend grants as asked. */
  leaseTtl: number;
}

export interface Seen {
  changes: { revision: number; events: readonly StoreEvent[] }[];
  resets: string[];
  watch: Watch;
  /** Resolves once `n` changes have arrived (rejects after `ms`). */
  until(n: number, ms?: number): Promise<void>;
}

/** Watches `prefix` from `from`, recording every change and reset. */
export function record(store: Store, prefix: string, from: number): Seen {
  const changes: Seen['changes'] = [];
  const resets: string[] = [];
  let wake = (): void => {};
  const watch = store.watch(prefix, from, {
    events: (events, revision) => (changes.push({ revision, events }), wake()),
    reset: (reason) => (resets.push(reason), wake()),
  });
  const until = async (n: number, ms = 5000): Promise<void> => {
    const deadline = Date.now() + ms;
    while (changes.length < n && resets.length === 0) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${changes.length} of ${n} changes within ${ms} ms`);
      await new Promise<void>((r) => {
        const timer = setTimeout(r, left);
        wake = () => (clearTimeout(timer), r());
      });
    }
  };
  return { changes, resets, watch, until };
}

const keysOf = (events: readonly StoreEvent[]): string[] => events.map((e) => (e.type === 'put' ? `put ${e.kv.key}` : `delete ${e.key}`));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it holds or `ms` pass; resolves with how long that took. */
export async function within(ms: number, check: () => Promise<boolean>): Promise<number> {
  const start = Date.now();
  while (!(await check())) {
    if (Date.now() - start > ms) throw new Error(`not within ${ms} ms`);
    await sleep(50);
  }
  return Date.now() - start;
}

const percentile = (sorted: number[], p: number): string => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!.toFixed(2);

/** Times `n` sequential puts on `writer`, and each one's way to a watch on `watcher`: a line for the log. */
export async function putLatency(writer: Store, watcher: Store, n: number): Promise<string> {
  const sent: number[] = [];
  const delays: number[] = [];
  const watch = watcher.watch('lat/', (await writer.list('')).revision, {
    events: ([e]) => delays.push(performance.now() - sent[(e as { kv: { value: { i: number } } }).kv.value.i]!),
    reset: () => {},
  });
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    sent.push(performance.now());
    await put(writer, `lat/${i}`, { i, name: 'sandbox-create' });
    times.push(performance.now() - sent[i]!);
  }
  await within(5000, async () => delays.length === n).finally(() => watch.close());
  times.sort((a, b) => a - b);
  delays.sort((a, b) => a - b);
  return `${n} sequential puts: p50 ${percentile(times, 0.5)} ms, p99 ${percentile(times, 0.99)} ms, max ${percentile(times, 1)} ms; put → event p50 ${percentile(delays, 0.5)} ms, p99 ${percentile(delays, 0.99)} ms`;
}

export function storeCases(name: string, { open, leaseTtl }: StoreCaseOptions): void {
  // Serial: etcd's revision counter is shared by everything on the cluster, so a test counting
  // revisions must not have a neighbour writing meanwhile.
  const cases = test.serial;

  cases(`${name}: get, list sorted by key, prefixes kept apart`, async (t) => {
    const { store } = await open(t);
    t.is(await store.get('a/x'), undefined);
    for (const k of ['a/2', 'a/10', 'a/1', 'ab/1', 'b/1']) await put(store, k, { k });
    const { kvs } = await store.list('a/');
    t.deepEqual(kvs.map((kv) => kv.key), ['a/1', 'a/10', 'a/2']);
    t.deepEqual((await store.get<{ k: string }>('ab/1'))?.value, { k: 'ab/1' });
    t.is((await store.list('c/')).kvs.length, 0);
    t.is((await store.list('')).kvs.length, 5);
  });

  cases(`${name}: a list of more than 5 MB (1300 keys of 4 KB) comes back whole, in order, as of one revision`, async (t) => {
    const { store } = await open(t);
    const filler = 'x'.repeat(4096);
    const keys = Array.from({ length: 1300 }, (_, i) => `big/${String(i).padStart(4, '0')}`);
    const revision = await writeInChunks(store, keys.map((key) => ({ op: 'put', key, value: { filler } })));
    await put(store, 'big0/after', {});
    const list = await store.list('big/');
    t.deepEqual(list.kvs.map((kv) => kv.key), keys);
    t.is(list.revision, revision + 1);
  });

  cases(`${name}: txn conditions; a failed txn writes nothing and makes no revision`, async (t) => {
    const { store } = await open(t);
    const first = await store.txn([{ key: 'k', modRevision: 0 }], [{ op: 'put', key: 'k', value: 1 }]);
    t.true(first.succeeded);
    const again = await store.txn([{ key: 'k', modRevision: 0 }], [{ op: 'put', key: 'k', value: 2 }, { op: 'put', key: 'other', value: 2 }]);
    t.deepEqual(again, { succeeded: false, revision: first.revision });
    t.is(await store.get('other'), undefined);
    t.false((await store.txn([{ key: 'k', modRevision: first.revision + 1 }], [{ op: 'put', key: 'k', value: 3 }])).succeeded);
    t.false((await store.txn([{ key: 'k', modRevision: first.revision }, { key: 'absent', modRevision: 5 }], [{ op: 'put', key: 'k', value: 4 }])).succeeded);
    t.is((await store.get('k'))?.value, 1);
    const both = await store.txn([{ key: 'k', modRevision: first.revision }, { key: 'absent', modRevision: 0 }], [{ op: 'put', key: 'k', value: 5 }, { op: 'delete', key: 'absent' }]);
    t.deepEqual(both, { succeeded: true, revision: first.revision + 1 });
    t.is((await store.list('')).revision, both.revision);
  });

  cases(`${name}: one revision per writing txn; createRevision kept, modRevision moved`, async (t) => {
    const { store } = await open(t);
    const r1 = (await put(store, 'k', 'a')).revision;
    const r2 = (await store.txn([], [{ op: 'put', key: 'k', value: 'b' }, { op: 'put', key: 'j', value: 'b' }])).revision;
    t.is(r2, r1 + 1);
    t.like(await store.get('k'), { createRevision: r1, modRevision: r2, value: 'b' });
    t.like(await store.get('j'), { createRevision: r2, modRevision: r2 });
    // Deleting a key that is not there changes nothing.
    t.deepEqual(await store.txn([], [{ op: 'delete', key: 'nothing' }]), { succeeded: true, revision: r2 });
    t.is((await store.txn([], [{ op: 'delete', key: 'k' }])).revision, r2 + 1);
    await t.throwsAsync(store.txn([], [{ op: 'put', key: 'x', value: 1 }, { op: 'delete', key: 'x' }]));
  });

  cases(`${name}: a watch from a list's revision sees every later change in order, delete events carry prev`, async (t) => {
    const { store } = await open(t);
    await put(store, 'w/before', 0);
    const { revision } = await store.list('w/');
    const seen = record(store, 'w/', revision);
    t.teardown(() => seen.watch.close());
    const r1 = (await put(store, 'w/a', 1)).revision;
    await put(store, 'elsewhere', 1);
    const r2 = (await put(store, 'w/a', 2)).revision;
    const r3 = (await store.txn([], [{ op: 'delete', key: 'w/a' }, { op: 'put', key: 'w/b', value: 3 }])).revision;
    await seen.until(3);
    t.deepEqual(seen.changes.map((c) => c.revision), [r1, r2, r3]);
    t.deepEqual(seen.changes.map((c) => keysOf(c.events)), [['put w/a'], ['put w/a'], ['delete w/a', 'put w/b']]);
    const [update, del] = [seen.changes[1]!.events[0]!, seen.changes[2]!.events[0]!];
    t.like(update, { type: 'put', kv: { value: 2, createRevision: r1, modRevision: r2 }, prev: { value: 1, modRevision: r1 } });
    t.like(del, { type: 'delete', key: 'w/a', revision: r3, prev: { value: 2, modRevision: r2 } });
    t.deepEqual(seen.resets, []);
  });

  cases(`${name}: a watch closed and started again from the last revision seen misses and repeats nothing`, async (t) => {
    const { store } = await open(t);
    const { revision } = await store.list('r/');
    const first = record(store, 'r/', revision);
    for (let i = 0; i < 5; i++) await put(store, `r/${i}`, i);
    await first.until(5);
    first.watch.close();
    const last = first.changes.at(-1)!.revision;
    for (let i = 5; i < 10; i++) await put(store, `r/${i}`, i);
    const second = record(store, 'r/', last);
    t.teardown(() => second.watch.close());
    for (let i = 10; i < 12; i++) await put(store, `r/${i}`, i);
    await second.until(7);
    const values = [...first.changes, ...second.changes].map((c) => (c.events[0] as { kv: { value: number } }).kv.value);
    t.deepEqual(values, [...Array(12).keys()]);
  });

  cases(`${name}: of twenty racing creates of one key exactly one wins`, async (t) => {
    const { store } = await open(t);
    const wins = await Promise.all(Array.from({ length: 20 }, (_, i) => create(store, 'ipam/10.0.0.2', { by: i })));
    t.is(wins.filter(Boolean).length, 1);
    t.is((await store.get<{ by: number }>('ipam/10.0.0.2'))?.value.by, wins.indexOf(true));
  });

  cases(`${name}: revoking a lease deletes its keys, with delete events`, async (t) => {
    const { store } = await open(t);
    const lease = await store.grantLease(leaseTtl + 5);
    await put(store, 'l/mine', 1, lease.id);
    await put(store, 'l/also', 2, lease.id);
    await put(store, 'l/free', 3);
    t.is((await store.get('l/mine'))?.lease, lease.id);
    const seen = record(store, 'l/', (await store.list('l/')).revision);
    t.teardown(() => seen.watch.close());
    await lease.revoke();
    t.deepEqual((await store.list('l/')).kvs.map((kv) => kv.key), ['l/free']);
    await seen.until(1);
    t.deepEqual(keysOf(seen.changes[0]!.events).sort(), ['delete l/also', 'delete l/mine']);
    await t.throwsAsync(put(store, 'l/late', 1, lease.id));
  });

  cases(`${name}: a live lease keeps its keys past its TTL`, async (t) => {
    const { store } = await open(t);
    const lease = await store.grantLease(leaseTtl);
    let lost = false;
    lease.onLost(() => (lost = true));
    await put(store, 'alive', 1, lease.id);
    await sleep(leaseTtl * 1000 * 2 + 500);
    t.truthy(await store.get('alive'));
    t.false(lost);
  });

  cases(`${name}: a dead owner's leased keys go about one TTL after, the others stay`, async (t) => {
    const opened = await open(t);
    const lease = await opened.store.grantLease(leaseTtl + 1);
    await put(opened.store, 'node/a', 'a', lease.id);
    await put(opened.store, 'network/n', 'n');
    const other = await opened.reopen();
    t.truthy(await other.get('node/a'), 'still there right after the owner went');
    const seen = record(other, 'node/', (await other.list('node/')).revision);
    t.teardown(() => seen.watch.close());
    const ms = await within((leaseTtl + 3) * 1000, async () => (await other.get('node/a')) === undefined);
    t.log(`leased key gone ${ms} ms after the owner closed (TTL ${leaseTtl + 1} s)`);
    await seen.until(1);
    t.like(seen.changes[0]!.events[0], { type: 'delete', key: 'node/a', prev: { value: 'a' } });
    t.truthy(await other.get('network/n'));
  });

  cases(`${name}: reopened, the same data at the same revision`, async (t) => {
    const opened = await open(t);
    await put(opened.store, 'p/1', { deep: [1, { x: 'y' }] });
    await put(opened.store, 'p/2', 2);
    await opened.store.txn([], [{ op: 'delete', key: 'p/2' }]);
    const before = await opened.store.list('');
    const again = await opened.reopen();
    t.deepEqual(await again.list(''), before);
    t.is((await put(again, 'p/3', 3)).revision, before.revision + 1);
  });
}
