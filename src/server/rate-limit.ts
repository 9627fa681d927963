import { isIPv4 } from 'node:net';
import { toBigInt } from '../net/ipam/cidr.js';
import { unmapped } from '../registry/address.js';

/** What to do with one UDP reply: send it, send it truncated (the asker may retry over TCP), or drop it. */
export type Admission = 'send' | 'slip' | 'drop';

interface Bucket {
  tokens: number;
  /** performance.now() of the last refill. */
  at: number;
  /** Replies refused since the last one let through, for slip. */
  refused: number;
}

export interface RateLimitOptions {
  /** Replies per second per client prefix (a /24 for IPv4, a /56 for IPv6), with a burst of as many. */
  perSecond: number;
  /** Every `slip`-th refused reply goes out truncated instead of not at all (BIND's default 2). */
  slip?: number;
  /** Prefixes tracked at once; the table starts afresh when it is full (a flood of spoofed sources). */
  maxPrefixes?: number;
}

/** The /24 or /56 a source address belongs to: the unit a spoofed flood is limited in. */
function prefixOf(source: string): string {
  const address = unmapped(source);
  if (isIPv4(address)) return address.slice(0, address.lastIndexOf('.'));
  // Text groups cannot be cut at /56 ('::' hides how many there are): the number can.
  return (toBigInt(address) >> 72n).toString(16);
}

/**
 * Response rate limiting for UDP, after BIND's RRL: a token bucket per client prefix. Over the
 * limit, replies are dropped, except every `slip`-th which goes out with TC and no records, so a
 * real client behind a spoofed flood still gets through over TCP and an amplification attack
 * gains nothing. TCP is never limited: its handshake proves the source.
 */
export class RateLimiter {
  readonly #perSecond: number;
  readonly #slip: number;
  readonly #max: number;
  #buckets = new Map<string, Bucket>();

  constructor({ perSecond, slip = 2, maxPrefixes = 100_000 }: RateLimitOptions) {
    this.#perSecond = perSecond;
    this.#slip = slip;
    this.#max = maxPrefixes;
  }

  admit(address: string, now = performance.now()): Admission {
    const key = prefixOf(address);
    let b = this.#buckets.get(key);
    if (b === undefined) {
      if (this.#buckets.size >= this.#max) this.#buckets = new Map();
      this.#buckets.set(key, (b = { tokens: this.#perSecond, at: now, refused: 0 }));
    } else {
      b.tokens = Math.min(this.#perSecond, b.tokens + ((now - b.at) / 1000) * this.#perSecond);
      b.at = now;
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      b.refused = 0;
      return 'send';
    }
    b.refused++;
    return this.#slip > 0 && b.refused % this.#slip === 0 ? 'slip' : 'drop';
  }
}
