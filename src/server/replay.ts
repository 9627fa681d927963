import type { Registry, Scope } from '../registry/registry.js';
import type { Query } from '../wire/query.js';
import { replyFor } from '../wire/reply.js';
import type { ShuffleSpan } from './resolver.js';
import { shuffleRecords } from './shuffle.js';

/** Which of a question's three stored forms a query takes: no EDNS, EDNS, EDNS with DO. */
export const ednsSlot = (q: Query): number => (q.edns === null ? 0 : q.edns.dnssecOk ? 2 : 1);

/** Bytes the stored replies may take (also the batched path's table's bound). */
export const REPLAY_MAX_BYTES = 16 * 1024 * 1024;

export interface Replay {
  bytes: Buffer;
  shuffle: ShuffleSpan | null;
}

/**
 * The fast path: encoded replies for registry names, keyed by (scope, name, type, class,
 * EDNS), replayed with only the ID, RD, question case and record order changed. Emptied on
 * every registry change, so the next query after a change is answered from the new state.
 */
export class ReplayCache {
  /** Scope → question key → one slot per EDNS form (none, EDNS, EDNS with DO): no key strings built per query. */
  #entries = new WeakMap<Scope, Map<string, (Replay | undefined)[]>>();
  #size = 0;
  #bytes = 0;
  readonly #max: number;
  readonly #maxBytes: number;

  /** Bounded by entries and by bytes (reply plus key, about 80 bytes of overhead each): full, it starts afresh. */
  constructor(registry: Registry, max = 100_000, maxBytes = REPLAY_MAX_BYTES) {
    this.#max = max;
    this.#maxBytes = maxBytes;
    registry.on('change', () => this.clear());
  }

  clear(): void {
    this.#entries = new WeakMap();
    this.#size = 0;
    this.#bytes = 0;
  }

  get(scope: Scope, q: Query): Replay | undefined {
    return this.#entries.get(scope)?.get(q.key)?.[ednsSlot(q)];
  }

  /** Stores `replay` for `q` in `scope`; false when nothing is stored (replay is off). */
  set(scope: Scope, q: Query, replay: Replay): boolean {
    if (this.#max === 0) return false;
    if (this.#size >= this.#max || this.#bytes >= this.#maxBytes) this.clear();
    let byKey = this.#entries.get(scope);
    if (byKey === undefined) this.#entries.set(scope, (byKey = new Map()));
    let slots = byKey.get(q.key);
    if (slots === undefined) byKey.set(q.key, (slots = []));
    slots[ednsSlot(q)] = replay;
    this.#size++;
    this.#bytes += replay.bytes.length + q.key.length + 80;
    return true;
  }

  /** A copy of `replay` made into the reply to `q`. */
  static render(replay: Replay, q: Query): Buffer {
    const out = replyFor(q, replay.bytes);
    if (replay.shuffle !== null) shuffleRecords(out, replay.shuffle);
    return out;
  }
}
