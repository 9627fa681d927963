import type { Registry, Scope } from '../registry/registry.js';
import type { Query } from '../wire/query.js';
import { replyFor } from '../wire/reply.js';
import type { ShuffleSpan } from './resolver.js';
import { shuffleRecords } from './shuffle.js';

interface Replay {
  bytes: Buffer;
  shuffle: ShuffleSpan | null;
}

/**
 * The fast path: encoded replies for registry names, keyed by (scope, name, type, class,
 * EDNS), replayed with only the ID, RD, question case and record order changed. Emptied on
 * every registry change, so the next query after a change is answered from the new state.
 */
export class ReplayCache {
  readonly #entries = new Map<string, Replay>();
  readonly #max: number;

  constructor(registry: Registry, max = 100_000) {
    this.#max = max;
    registry.on('change', () => this.#entries.clear());
  }

  static key(scope: Scope, q: Query): string {
    const edns = q.edns === null ? 0 : q.edns.dnssecOk ? 2 : 1;
    return `${scope.key}\0${q.name}\0${q.type}\0${q.qclass}\0${edns}`;
  }

  get(key: string): Replay | undefined {
    return this.#entries.get(key);
  }

  set(key: string, replay: Replay): void {
    if (this.#entries.size >= this.#max) this.#entries.clear();
    this.#entries.set(key, replay);
  }

  /** A copy of `replay` made into the reply to `q`. */
  static render(replay: Replay, q: Query): Buffer {
    const out = replyFor(q, replay.bytes);
    if (replay.shuffle !== null) shuffleRecords(out, replay.shuffle);
    return out;
  }
}
