/**
 * The latency histogram's buckets, apart from metrics.ts: the batched UDP worker counts into
 * them, and importing metrics.ts there loaded prom-client into its isolate too (11 MB of RSS).
 */

/** Upper bounds of the latency histogram, seconds. */
export const BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/** The histogram bucket `seconds` falls in (BUCKETS.length: above the last bound). */
export function bucketOf(seconds: number): number {
  let i = 0;
  while (i < BUCKETS.length && seconds > BUCKETS[i]!) i++;
  return i;
}
