import { randomInt } from 'node:crypto';
import type { ShuffleSpan } from './resolver.js';

/**
 * A random order of `weights.length` items in which heavier items tend to come first
 * (Efraimidis–Spirakis: sort by u^(1/w)); plain Fisher–Yates when all weights are equal.
 */
export function weightedOrder(weights: readonly number[]): number[] {
  const order = weights.map((_, i) => i);
  if (weights.every((w) => w === weights[0])) {
    for (let i = order.length - 1; i > 0; i--) {
      const j = randomInt(i + 1);
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    return order;
  }
  const keys = weights.map((w) => (w > 0 ? Math.random() ** (1 / w) : -1));
  return order.sort((a, b) => keys[b]! - keys[a]!);
}

/** Reorders the equal-sized records of `span` within `message`, in place. */
export function shuffleRecords(message: Buffer, span: ShuffleSpan): void {
  const region = Buffer.from(message.subarray(span.start, span.start + span.size * span.weights.length));
  weightedOrder(span.weights).forEach((from, to) => {
    region.copy(message, span.start + to * span.size, from * span.size, (from + 1) * span.size);
  });
}
