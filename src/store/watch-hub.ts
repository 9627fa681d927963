import type { StoreEvent, Watch, WatchHandlers } from './store.js';

interface Change {
  revision: number;
  events: readonly StoreEvent[];
}

const keyOf = (e: StoreEvent): string => (e.type === 'put' ? e.kv.key : e.key);

/**
 * In-process watches over a bounded history of recent changes: a watch from a revision still in
 * the history replays what it missed, one from before it is reset. Delivery is always on a later
 * task, so a handler never runs inside the `txn` that caused it.
 */
export class WatchHub {
  readonly #history: Change[] = [];
  readonly #watchers = new Set<Watcher>();
  readonly #maxRevisions: number;
  /** Revisions after this one are in the history (or are still to come). */
  #historyAfter: number;
  #head: number;

  constructor({ revision, maxRevisions = 10_000 }: { revision: number; maxRevisions?: number }) {
    this.#historyAfter = revision;
    this.#head = revision;
    this.#maxRevisions = maxRevisions;
  }

  /** Records one transaction's events (revisions must come in increasing order). */
  publish(revision: number, events: readonly StoreEvent[]): void {
    if (revision <= this.#head) throw new Error(`store: watch hub: revision ${revision} after ${this.#head}`);
    this.#head = revision;
    this.#history.push({ revision, events });
    if (this.#history.length > this.#maxRevisions) this.#historyAfter = this.#history.shift()!.revision;
    for (const w of this.#watchers) w.offer([{ revision, events }]);
  }

  watch(prefix: string, fromRevision: number, handlers: WatchHandlers): Watch {
    const w = new Watcher(prefix, handlers, () => this.#watchers.delete(w));
    if (fromRevision < this.#historyAfter) {
      w.fail(`revision ${fromRevision} is older than the history kept (from ${this.#historyAfter + 1})`);
      return w;
    }
    this.#watchers.add(w);
    w.offer(this.#history.filter((c) => c.revision > fromRevision));
    return w;
  }

  /** Ends every watch without a word: the store is closing, and its owner with it. */
  closeAll(): void {
    for (const w of this.#watchers) w.close();
  }
}

class Watcher implements Watch {
  #queue: Change[] = [];
  #scheduled = false;
  #closed = false;
  readonly #prefix: string;
  readonly #handlers: WatchHandlers;
  readonly #detach: () => void;

  constructor(prefix: string, handlers: WatchHandlers, detach: () => void) {
    this.#prefix = prefix;
    this.#handlers = handlers;
    this.#detach = detach;
  }

  offer(changes: readonly Change[]): void {
    for (const { revision, events } of changes) {
      const mine = events.filter((e) => keyOf(e).startsWith(this.#prefix));
      if (mine.length > 0) this.#queue.push({ revision, events: mine });
    }
    this.#schedule();
  }

  fail(reason: string): void {
    this.close();
    setImmediate(() => this.#handlers.reset(reason));
  }

  close(): void {
    this.#closed = true;
    this.#queue = [];
    this.#detach();
  }

  #schedule(): void {
    if (this.#scheduled || this.#queue.length === 0) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      // A handler may close the watch: nothing after that is delivered.
      while (!this.#closed && this.#queue.length > 0) {
        const { revision, events } = this.#queue.shift()!;
        this.#handlers.events(events, revision);
      }
    });
  }
}
