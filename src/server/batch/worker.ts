import { isMainThread, parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { Flag, PLAIN_UDP_SIZE } from '../../wire/constants.js';
import { parseQuery, type Query } from '../../wire/query.js';
import { relayTo, truncate, udpLimit } from '../../wire/reply.js';
import { RateLimiter } from '../rate-limit.js';
import { ednsSlot, emptySlots, ReplayCache, replayWeight, type Replay } from '../replay.js';
import { cachedAge, type CachedAnswer } from '../resolver.js';
import { addressOf, Batch, EAGAIN, EINTR, Poller, Wakeup } from './mmsg.js';
import { bucketOf } from '../buckets.js';
import { askerKey, BUCKET_AT, CACHED_AT, GENERATION, RCODE_SLOTS, SENDER_BYTES, STOP, SUM_AT, TYPE_SLOTS, type FromWorker, type Learned, type ToWorker, type WorkerInit } from './protocol.js';

/**
 * The batched UDP loop (see batched-udp.ts): every listener's socket in one epoll set, each
 * readable one drained with recvmmsg, queries with an answer in this thread's tables replayed
 * into one sendmmsg; the rest go to the main thread whole, with the asker's address. It never
 * returns to its event loop: messages from the main thread are read between batches.
 */
/**
 * Answers for askers: (listener, asker) → table id (a scope, or a scope with an upstream set),
 * and table id → question key → one answer per EDNS form.
 */
class Tables<E> {
  readonly askers = new Map<number | string, number>();
  readonly #byId = new Map<number, Map<string, (E | undefined)[]>>();

  put(asker: number | string, id: number, key: string, slot: number, e: E): void {
    this.askers.set(asker, id);
    let byKey = this.#byId.get(id);
    if (byKey === undefined) this.#byId.set(id, (byKey = new Map()));
    let slots = byKey.get(key);
    if (slots === undefined) byKey.set(key, (slots = emptySlots()));
    slots[slot] = e;
  }

  get(asker: number | string, key: string, slot: number): E | undefined {
    const id = this.askers.get(asker);
    return id === undefined ? undefined : this.#byId.get(id)?.get(key)?.[slot];
  }

  drop(asker: number | string, key: string, slot: number): void {
    const slots = this.#byId.get(this.askers.get(asker) ?? -1)?.get(key);
    if (slots !== undefined) slots[slot] = undefined;
  }
}

/** A forwarded reply as this thread keeps it: the cache's CachedAnswer, its bytes a latin1 string. */
type Forwarded = Omit<CachedAnswer, 'kept'> & { kept: { bytes: string; rcode: number } };

/**
 * The heap a Forwarded entry takes beside its bytes and key: its objects, the TTL offsets, the
 * slots and the map's share; 397 bytes an entry of a 60-byte reply with a 24-character key, measured.
 */
const FORWARDED_OVERHEAD = 310;

const BATCH = 64;
/** A wait with nothing to read ends after this; messages wake it sooner (the wakeup eventfd). */
const WAIT_MS = 1000;
/** The wakeup's tag in the epoll set: listeners' are their indexes, from 0. */
const WAKE = 2 ** 32;

function run({ control, stats, wakeup, rateLimit, maxEntries, maxBytes }: WorkerInit): void {
  const ctl = new Int32Array(control);
  const port = parentPort!;
  const post = (m: FromWorker): void => port.postMessage(m, m.kind === 'misses' ? [m.data.buffer, m.meta.buffer] : []);
  const fds = new Map<number, number>();
  const poller = new Poller(BATCH);
  const wake = new Wakeup(wakeup);
  poller.add(wake.fd, WAKE);
  const batch = new Batch(BATCH);
  const limiter = rateLimit === undefined ? undefined : new RateLimiter(rateLimit);
  /** Registry answers by scope and forwarded ones by scope and upstreams: emptied on a registry change. */
  let replays = new Tables<Replay>();
  let forwarded = new Tables<Forwarded>();
  let generation = Atomics.load(ctl, GENERATION);
  let entries = 0;
  let bytes = 0;
  const forget = (): void => {
    replays = new Tables();
    forwarded = new Tables();
    entries = bytes = 0;
  };
  const tally = new Float64Array(stats);
  post({ kind: 'ready' });

  const take = (m: ToWorker): void => {
    if (m.kind === 'add') {
      fds.set(m.index, m.fd);
      poller.add(m.fd, m.index);
    } else if (m.kind === 'remove') {
      const fd = fds.get(m.index);
      if (fd !== undefined) poller.remove(fd);
      fds.delete(m.index);
      post({ kind: 'removed', index: m.index });
    } else {
      for (const item of m.items) learn(item);
    }
  };

  const learn = (m: Learned): void => {
    if (m.generation !== generation || maxEntries === 0) return;
    if (entries >= maxEntries || bytes >= maxBytes) forget();
    entries++;
    const asker = askerKey(m.index, m.address);
    if (m.kind === 'entry') {
      bytes += replayWeight(m.key, m.replay);
      replays.put(asker, m.scope, m.key, m.slot, m.replay);
      return;
    }
    bytes += m.bytes.length + m.key.length + FORWARDED_OVERHEAD;
    forwarded.put(asker, m.context, m.key, m.slot, { kept: { bytes: m.bytes, rcode: m.rcode }, ttlOffsets: m.ttlOffsets, storedAt: m.storedAt, ttl: m.ttl });
  };

  /**
   * The reply this thread has for `q` from `asker`, counted: a registry answer, else (as the
   * chain runs the cache only for names the registry does not own) a forwarded one the cache
   * holds, unless it has run out. CD is in the cache's key, not here: CD queries go to the main thread.
   */
  const answer = (q: Query, asker: number | string): Buffer | undefined => {
    const slot = ednsSlot(q);
    const entry = replays.get(asker, q.key, slot);
    if (entry !== undefined) {
      tally[Math.min(q.type, TYPE_SLOTS - 1)]!++;
      return ReplayCache.render(entry, q);
    }
    if (q.flags & Flag.CD) return undefined;
    const cached = forwarded.get(asker, q.key, slot);
    if (cached === undefined) return undefined;
    const age = cachedAge(cached.storedAt, cached.ttl, performance.timeOrigin + performance.now());
    if (age === undefined) {
      forwarded.drop(asker, q.key, slot);
      return undefined;
    }
    tally[CACHED_AT + Math.min(q.type, TYPE_SLOTS - 1) * RCODE_SLOTS + Math.min(cached.kept.rcode, RCODE_SLOTS - 1)]!++;
    return relayTo(q, cached.kept, age, cached.ttlOffsets);
  };

  const serve = (index: number, fd: number): void => {
    for (;;) {
      const n = batch.receive(fd);
      if (n === -EAGAIN || n === -EINTR || n <= 0) return;
      const started = performance.now();
      let replayed = 0;
      const missed: number[] = [];
      // After the read: a query that arrived after a registry change never meets the old table.
      const now = Atomics.load(ctl, GENERATION);
      if (now !== generation) {
        generation = now;
        forget();
      }
      for (let i = 0; i < n; i++) {
        const raw = batch.datagram(i);
        const sa = batch.sender(i);
        const v4 = sa.readUInt16LE(0) === 2;
        const admission = limiter?.admit(addressOf(sa).address) ?? 'send';
        if (admission === 'drop') continue;
        const parsed = parseQuery(raw);
        if (parsed.kind === 'drop') continue;
        const reply = parsed.kind === 'query' ? answer(parsed.query, v4 ? index * 2 ** 32 + sa.readUInt32BE(4) : askerKey(index, addressOf(sa).address)) : undefined;
        if (reply === undefined || parsed.kind !== 'query') {
          missed.push(i, admission === 'slip' ? 1 : 0);
          continue;
        }
        const q = parsed.query;
        batch.queue(i, truncate(reply, admission === 'slip' ? 0 : q.edns === null ? PLAIN_UDP_SIZE : udpLimit(q.edns)));
        replayed++;
      }
      batch.flush(fd);
      if (missed.length > 0) post(packMisses(index, batch, missed));
      // Each replay's time in the server is its share of the batch's, from the read to the send.
      if (replayed > 0) {
        const each = (performance.now() - started) / 1000 / n;
        tally[BUCKET_AT + bucketOf(each)]! += replayed;
        tally[SUM_AT]! += each * replayed;
      }
      if (n < BATCH) return;
    }
  };

  while (Atomics.load(ctl, STOP) === 0) {
    for (let m = receiveMessageOnPort(port); m !== undefined; m = receiveMessageOnPort(port)) take(m.message as ToWorker);
    for (const index of poller.wait(WAIT_MS)) {
      if (index === WAKE) {
        wake.drain();
        continue;
      }
      const fd = fds.get(index);
      if (fd !== undefined) serve(index, fd);
    }
  }
  poller.close();
}

/**
 * The batch's missed queries (`missed`: slot, slip pairs) copied into one buffer the message
 * transfers: one post per batch, not per query.
 */
function packMisses(index: number, batch: Batch, missed: readonly number[]): FromWorker {
  let total = 0;
  for (let k = 0; k < missed.length; k += 2) total += SENDER_BYTES + batch.datagram(missed[k]!).length;
  const data = new Uint8Array(total);
  const meta = new Int32Array(missed.length);
  let at = 0;
  for (let k = 0; k < missed.length; k += 2) {
    const raw = batch.datagram(missed[k]!);
    data.set(batch.sender(missed[k]!), at);
    data.set(raw, at + SENDER_BYTES);
    at += SENDER_BYTES + raw.length;
    meta[k] = raw.length;
    meta[k + 1] = missed[k + 1]!;
  }
  return { kind: 'misses', index, data, meta };
}

if (!isMainThread && (workerData as Partial<WorkerInit> | undefined)?.tsnetBatch === true) run(workerData as WorkerInit);
