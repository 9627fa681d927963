import type { Registry, Scope } from '../registry/registry.js';
import type { Query } from '../wire/query.js';
import { replyFor } from '../wire/reply.js';
import type { ShuffleSpan } from './resolver.js';
import { shuffleRecords } from './shuffle.js';

/** Which of a question's three stored forms a query takes: no EDNS, EDNS, EDNS with DO. */
export const ednsSlot = (q: Query): number => (q.edns === null ? 0 : q.edns.dnssecOk ? 2 : 1);

/**
 * A question's three slots, made at their size: an empty array that is given its first element
 * grows to room for 17 (144 bytes where these are 40).
 */
export const emptySlots = <T>(): (T | undefined)[] => [undefined, undefined, undefined];

/** Bytes the stored replies may take (also the batched path's table's bound). */
export const REPLAY_MAX_BYTES = 16 * 1024 * 1024;

/**
 * A stored registry answer: its bytes as a latin1 string, with the span of records to shuffle
 * when it has one. A string is its bytes and 16 more on the heap, a Buffer about 250 more (its
 * view, its ArrayBuffer and their backing store), and the worker's copy too arrives as one.
 */
export type Replay = string | { bytes: string; shuffle: ShuffleSpan };

export const replayOf = (bytes: Buffer, shuffle: ShuffleSpan | null): Replay => (shuffle === null ? bytes.toString('latin1') : { bytes: bytes.toString('latin1'), shuffle });

/**
 * What an entry weighs, as the tables count it: its bytes, its key, and the heap around them (the
 * map entry, the slots array, the string headers): 230 bytes an entry of a 71-byte answer,
 * measured on 100k of them; a shuffled one's object and span are counted at 64 more, not measured.
 */
export const replayWeight = (key: string, replay: Replay): number => (typeof replay === 'string' ? replay.length : replay.bytes.length + 64) + key.length + REPLAY_OVERHEAD;
const REPLAY_OVERHEAD = 140;

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

  /** Bounded by entries and by bytes (as replayWeight counts them): full, it starts afresh. */
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

  /** Stores `replay` for `q` in `scope` (nothing when replay is off). */
  set(scope: Scope, q: Query, replay: Replay): void {
    if (this.#max === 0) return;
    if (this.#size >= this.#max || this.#bytes >= this.#maxBytes) this.clear();
    let byKey = this.#entries.get(scope);
    if (byKey === undefined) this.#entries.set(scope, (byKey = new Map()));
    let slots = byKey.get(q.key);
    if (slots === undefined) byKey.set(q.key, (slots = emptySlots()));
    slots[ednsSlot(q)] = replay;
    this.#size++;
    this.#bytes += replayWeight(q.key, replay);
  }

  /** A copy of `replay` made into the reply to `q`. */
  static render(replay: Replay, q: Query): Buffer {
    if (typeof replay === 'string') return replyFor(q, replay);
    const out = replyFor(q, replay.bytes);
    shuffleRecords(out, replay.shuffle);
    return out;
  }
}
