import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { Registry, Scope } from '../../registry/registry.js';
import { Flag, PLAIN_UDP_SIZE } from '../../wire/constants.js';
import { truncate, udpLimit } from '../../wire/reply.js';
import type { DnsMetrics } from '../metrics.js';
import type { ListenerContext, Pipeline } from '../pipeline.js';
import type { RateLimitOptions } from '../rate-limit.js';
import { ednsSlot } from '../replay.js';
import { addressOf, Batch, Wakeup } from './mmsg.js';
import { BUCKET_AT, CACHED_AT, CONTROL_SLOTS, RCODE_SLOTS, GENERATION, SENDER_BYTES, STAT_SLOTS, STOP, SUM_AT, type FromWorker, type Learned, type ToWorker, type WorkerInit } from './protocol.js';

/** A listener's UDP socket as given to `add`: the fd, its context, where it listens. */
export interface BatchedListener {
  fd: number;
  ctx: ListenerContext;
  address: string;
  port: number;
  netns: string | undefined;
}

export interface BatchedUdpOptions {
  pipeline: Pipeline;
  registry: Registry;
  metrics: DnsMetrics;
  logger: Logger;
  rateLimit?: RateLimitOptions;
  maxEntries: number;
  maxBytes: number;
  /**
   * The worker stopped (it could not start, or failed): `listeners` are the sockets it served,
   * still open, for the caller to serve another way. Nothing is served here after this.
   */
  onFailure(listeners: (BatchedListener & { adopted(close: () => Promise<void>): void })[]): void;
}

/**
 * UDP past libuv's one-callback-one-syscall-per-datagram floor: a worker thread polls every
 * listener's socket and answers replayable registry names and cached forwarded replies itself,
 * a batch per recvmmsg and sendmmsg (src/server/batch/worker.ts). What it cannot answer comes
 * here whole and runs the usual pipeline (the resolver chain, forwarding); the reply goes out
 * on the same socket, and a stored registry answer, or a reply the cache answered from what it
 * keeps, is copied into the worker's table for the next time (a cached one for the askers of
 * the same scope and upstreams, aged there, until its TTL runs out). The worker's tables are
 * emptied with every registry change, before the next query is read. Rate limiting happens in
 * the worker, for every datagram; TCP is untouched.
 */
export class BatchedUdp {
  readonly #o: BatchedUdpOptions;
  readonly #worker: Worker;
  readonly #ctl: Int32Array;
  readonly #wakeup = new Wakeup();
  readonly #listeners = new Map<number, BatchedListener>();
  readonly #removing = new Map<number, () => void>();
  readonly #scopeIds = new WeakMap<Scope, number>();
  #nextIndex = 0;
  #nextScope = 0;

  constructor(options: BatchedUdpOptions) {
    this.#o = options;
    const control = new SharedArrayBuffer(CONTROL_SLOTS * 4);
    this.#ctl = new Int32Array(control);
    const stats = new SharedArrayBuffer(STAT_SLOTS * 8);
    const tally = new Float64Array(stats);
    options.metrics.addTally({
      replays: () => [...tally.subarray(0, BUCKET_AT).entries()].filter(([, n]) => n > 0),
      cached: () => [...tally.subarray(CACHED_AT).entries()].flatMap(([i, n]): [number, number, number][] => (n > 0 ? [[Math.floor(i / RCODE_SLOTS), i % RCODE_SLOTS, n]] : [])),
      buckets: () => [...tally.subarray(BUCKET_AT, SUM_AT)],
      seconds: () => tally[SUM_AT]!,
    });
    const init: WorkerInit = { tsnetBatch: true, control, stats, wakeup: this.#wakeup.fd, maxEntries: options.maxEntries, maxBytes: options.maxBytes, ...(options.rateLimit === undefined ? {} : { rateLimit: options.rateLimit }) };
    this.#worker = startWorker(init);
    this.#worker.on('message', (m: FromWorker) => this.#take(m));
    this.#worker.on('error', (err) => this.#failed(err));
    this.#worker.on('exit', (code) => this.#failed(new Error(`exited with code ${code}`)));
    this.ready = new Promise((resolve) => (this.#ready = resolve));
    options.registry.on('change', () => Atomics.add(this.#ctl, GENERATION, 1));
  }

  /** Resolves true once the worker runs, false if it could not start. */
  readonly ready: Promise<boolean>;
  #ready: (ok: boolean) => void = () => {};
  #down = false;

  #failed(err: Error): void {
    if (this.#down) return;
    this.#down = true;
    this.#ready(false);
    // Listeners on their way out are not handed on: their fds are their callers' to close.
    for (const done of this.#removing.values()) done();
    this.#removing.clear();
    if (Atomics.load(this.#ctl, STOP) === 1) return;
    this.#o.logger.error({ err: err.message }, 'batched udp worker stopped: its listeners go back to plain dgram sockets');
    const handed = [...this.#listeners].map(([index, l]) => ({ ...l, adopted: (close: () => Promise<void>) => this.#closers.set(index, close) }));
    this.#o.onFailure(handed);
  }

  /** Listeners served another way since the worker stopped: `remove` closes them there. */
  readonly #closers = new Map<number, () => Promise<void>>();

  /** Serves `l.fd` (a bound UDP socket) for `l.ctx`; the fd stays the caller's, to close after `remove`. */
  add(l: BatchedListener): number {
    const index = this.#nextIndex++;
    this.#listeners.set(index, l);
    this.#post({ kind: 'add', index, fd: l.fd });
    return index;
  }

  /**
   * Stops serving listener `index`; resolves once the worker no longer reads its fd: true when
   * the fd is the caller's to close, false when it was handed on (onFailure) and closed there.
   */
  async remove(index: number): Promise<boolean> {
    if (this.#down) {
      this.#listeners.delete(index);
      const close = this.#closers.get(index);
      this.#closers.delete(index);
      if (close === undefined) return true;
      await close();
      return false;
    }
    return new Promise((resolve) => {
      this.#removing.set(index, () => {
        this.#listeners.delete(index);
        resolve(true);
      });
      this.#post({ kind: 'remove', index });
    });
  }

  async close(): Promise<void> {
    Atomics.store(this.#ctl, STOP, 1);
    if (!this.#down) {
      this.#wakeup.wake();
      await new Promise<void>((resolve) => {
        this.#worker.once('exit', () => resolve());
      });
    }
    this.#wakeup.close();
  }

  /**
   * Nothing goes to a worker that has stopped or is stopping: answers learned later (the turn's
   * batch, a forwarded reply that came after close) would wake an eventfd close() may have closed,
   * whose number may by then be another file's.
   */
  #post(m: ToWorker): void {
    if (this.#down || Atomics.load(this.#ctl, STOP) === 1) return;
    this.#worker.postMessage(m);
    this.#wakeup.wake();
  }

  /**
   * Answers for the worker's tables go in one message per turn of the event loop: a post and a
   * wake-up per answer cost more than making it (every first answer is one).
   */
  #teach(item: Learned): void {
    if (this.#learned.push(item) === 1) setImmediate(() => this.#post({ kind: 'learn', items: this.#learned.splice(0) }));
  }

  readonly #learned: Learned[] = [];

  #scopeId(scope: Scope): number {
    let id = this.#scopeIds.get(scope);
    if (id === undefined) this.#scopeIds.set(scope, (id = this.#nextScope++));
    return id;
  }

  #take(m: FromWorker): void {
    if (m.kind === 'ready') return this.#ready(true);
    if (m.kind === 'removed') {
      this.#removing.get(m.index)?.();
      this.#removing.delete(m.index);
      return;
    }
    if (this.#down) return;
    const listener = this.#listeners.get(m.index);
    if (listener === undefined) return;
    const data = Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength);
    // Replies made at once (cache hits, refusals) go out together in one sendmmsg after the
    // loop; those that wait on an upstream go out alone when they come.
    this.#sending = listener;
    try {
      for (let k = 0, at = 0; k < m.meta.length; k += 2) {
        const length = m.meta[k]!;
        this.#answer(m.index, listener, data.subarray(at, at + SENDER_BYTES), data.subarray(at + SENDER_BYTES, at + SENDER_BYTES + length), m.meta[k + 1] === 1);
        at += SENDER_BYTES + length;
      }
    } finally {
      this.#sending = undefined;
      this.#replies.flush(listener.fd);
    }
  }

  /** The listener whose batch of misses is being answered right now, and the replies made for it. */
  #sending: BatchedListener | undefined;
  readonly #replies = new Batch(64);

  #send(index: number, listener: BatchedListener, reply: Buffer, sa: Buffer): void {
    if (this.#sending === listener) {
      if (this.#replies.full) this.#replies.flush(listener.fd);
      this.#replies.queueTo(sa, reply);
      return;
    }
    // A reply that waited on an upstream: those that come in the same turn of the event loop
    // go out together, once it has run its callbacks.
    this.#later.push({ index, listener, reply, sa });
    if (this.#later.length === 1) setImmediate(() => this.#sendLater());
  }

  readonly #later: { index: number; listener: BatchedListener; reply: Buffer; sa: Buffer }[] = [];

  #sendLater(): void {
    const later = this.#later.splice(0);
    let fd = -1;
    for (const { index, listener, reply, sa } of later) {
      // A listener closed meanwhile: its fd may be closed, or another socket's by now.
      if (this.#listeners.get(index) !== listener) continue;
      if (listener.fd !== fd || this.#replies.full) {
        if (fd >= 0) this.#replies.flush(fd);
        fd = listener.fd;
      }
      this.#replies.queueTo(sa, reply);
    }
    if (fd >= 0) this.#replies.flush(fd);
  }

  /** Runs one missed query through the pipeline; its reply goes out on the listener's socket. */
  #answer(index: number, listener: BatchedListener, sa: Buffer, raw: Buffer, slip: boolean): void {
    const source = addressOf(sa);
    const generation = Atomics.load(this.#ctl, GENERATION);
    this.#o.pipeline.handle(raw, source, 'udp', listener.ctx, (reply, q, keep) => {
      const limit = slip ? 0 : q === null ? PLAIN_UDP_SIZE : udpLimit(q.edns);
      this.#send(index, listener, truncate(reply, limit), sa);
      if (keep === undefined || q === null || generation !== Atomics.load(this.#ctl, GENERATION)) return;
      const at = { generation, index, address: source.address, key: q.key, slot: ednsSlot(q) };
      if (keep.kind === 'replay') {
        this.#teach({ kind: 'entry', ...at, scope: this.#scopeId(keep.scope), replay: keep.stored });
      } else if ((q.flags & Flag.CD) === 0) {
        const { kept, ttlOffsets, storedAt, ttl } = keep.cached;
        this.#teach({ kind: 'cached', ...at, context: this.#contextId(generation, keep.scope, keep.upstreams), bytes: kept.bytes.toString('latin1'), rcode: kept.rcode, ttlOffsets, storedAt, ttl });
      }
    });
  }

  /**
   * One id per (scope, upstream set) that forwarded answers were kept for: askers of the same
   * context share them. Ids start afresh with each generation, as the worker's tables do.
   */
  #contextId(generation: number, scope: Scope, upstreams: string): number {
    if (this.#contexts.generation !== generation) this.#contexts = { generation, ids: new Map() };
    const key = `${this.#scopeId(scope)}|${upstreams}`;
    let id = this.#contexts.ids.get(key);
    if (id === undefined) this.#contexts.ids.set(key, (id = this.#contexts.ids.size));
    return id;
  }

  #contexts = { generation: -1, ids: new Map<string, number>() };
}

/**
 * The worker's young generation: V8's default lets a busy isolate's new space grow to 33.6 MB
 * (measured with a worker allocating short-lived objects; 4.2 MB with this limit), and under a
 * unique-name workload every query is a miss the worker copies out. What it keeps lives in its
 * old generation, so a small young one costs it little: tsnet-dns's RSS after bench's three
 * workloads went from 153 to 145 MB (2026-12-03, on a loaded VM, so no qps figure here).
 */
const WORKER_LIMITS = { maxYoungGenerationSizeMb: 6 };

/**
 * The worker thread: worker.js next to this file; run from source (tests under tsx), worker.ts
 * with tsx's loader registered inside the worker, which does not inherit the parent's.
 */
function startWorker(init: WorkerInit): Worker {
  const url = new URL(import.meta.url.endsWith('.ts') ? './worker.ts' : './worker.js', import.meta.url);
  const options = { workerData: init, resourceLimits: WORKER_LIMITS };
  if (url.pathname.endsWith('.js')) return new Worker(url, options);
  const boot = `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(url.href)}); })`;
  return new Worker(boot, { ...options, eval: true });
}
