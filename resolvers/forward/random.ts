import { randomFillSync } from 'node:crypto';

/**
 * Unpredictable 16-bit numbers for query IDs and socket choice, drawn from a refilled block of
 * CSPRNG bytes: one syscall per 2048 numbers instead of one crypto call per query.
 */
export class RandomPool {
  readonly #bytes = Buffer.alloc(4096);
  #at = this.#bytes.length;

  /** A number in [0, 65536). */
  next16(): number {
    if (this.#at >= this.#bytes.length) {
      randomFillSync(this.#bytes);
      this.#at = 0;
    }
    const n = this.#bytes.readUInt16BE(this.#at);
    this.#at += 2;
    return n;
  }

  /** A number in [0, n) for n <= 65536, without modulo bias. */
  below(n: number): number {
    const limit = 65536 - (65536 % n);
    for (;;) {
      const x = this.next16();
      if (x < limit) return x % n;
    }
  }
}
