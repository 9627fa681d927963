import { BUCKETS } from '../buckets.js';
import type { RateLimitOptions } from '../rate-limit.js';
import type { Replay } from '../replay.js';

/** Int32 slots of the control block both threads share. */
export const GENERATION = 0;
export const STOP = 1;
export const CONTROL_SLOTS = 2;

/**
 * Float64 slots of the worker's tally, which the main thread reads at every metrics scrape:
 * replays by query type (types from 256 up share the last slot), then the latency histogram's
 * buckets (metrics.ts's), then the sum of the times, then cache hits by type and rcode
 * (`CACHED_AT + type slot × RCODE_SLOTS + rcode`, rcodes from 15 up in the last).
 */
export const TYPE_SLOTS = 257;
export const BUCKET_AT = TYPE_SLOTS;
export const SUM_AT = BUCKET_AT + BUCKETS.length + 1;
export const CACHED_AT = SUM_AT + 1;
export const RCODE_SLOTS = 16;
export const STAT_SLOTS = CACHED_AT + TYPE_SLOTS * RCODE_SLOTS;

export interface WorkerInit {
  tsnetBatch: true;
  control: SharedArrayBuffer;
  stats: SharedArrayBuffer;
  /** An eventfd the main thread writes after each message, so that a waiting worker reads it at once. */
  wakeup: number;
  rateLimit?: RateLimitOptions;
  /** The replay table's bounds, as the main thread's (ReplayCache): full, it starts afresh. */
  maxEntries: number;
  maxBytes: number;
}

/** Bytes of sender address before each missed query (a sockaddr_in6, which holds a sockaddr_in). */
export const SENDER_BYTES = 28;

/**
 * What the worker learns from the main thread: `entry` is a replayable registry answer for one
 * asker of one listener, made at `generation`; `cached` a forwarded reply the cache holds, for
 * the askers of one `context` (a scope and upstream set), served aged until `storedAt` (ms since
 * the epoch) + `ttl` seconds.
 */
export type Learned =
  | { kind: 'entry'; generation: number; index: number; address: string; scope: number; key: string; slot: number; replay: Replay }
  | {
      kind: 'cached';
      generation: number;
      index: number;
      address: string;
      context: number;
      key: string;
      slot: number;
      /** The kept reply, latin1. */
      bytes: string;
      rcode: number;
      ttlOffsets: readonly number[];
      storedAt: number;
      ttl: number;
    };

/** Main → worker: listeners in and out, and what it learned, several answers to a message. */
export type ToWorker = { kind: 'add'; index: number; fd: number } | { kind: 'remove'; index: number } | { kind: 'learn'; items: Learned[] };

/** Worker → main: it runs; a query it had no answer for; a listener let go. */
export type FromWorker =
  | { kind: 'ready' }
  /**
   * The queries of one batch it had no answer for, in one transferred buffer: each is
   * SENDER_BYTES of sockaddr then its bytes; `meta` has (length, slip) per query.
   */
  | { kind: 'misses'; index: number; data: Uint8Array<ArrayBuffer>; meta: Int32Array<ArrayBuffer> }
  | { kind: 'removed'; index: number };

/**
 * The key of an asker on a listener: a number for IPv4 (no string per datagram), the text for
 * IPv6. Both threads make it the same way, from the text (main) or the sockaddr (worker).
 */
export function askerKey(index: number, address: string): number | string {
  const parts = address.split('.');
  if (parts.length === 4) return index * 2 ** 32 + ((Number(parts[0]) << 24) >>> 0) + (Number(parts[1]) << 16) + (Number(parts[2]) << 8) + Number(parts[3]);
  return `${index}|${address}`;
}
