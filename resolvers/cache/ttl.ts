import { QType, Rcode } from '../../src/wire/constants.js';
import { layoutMessage, type MessageLayout } from '../../src/wire/layout.js';

/** Caps: a day for answers, three hours for denials (RFC 2308 section 5). */
const MAX_POSITIVE = 86_400;
const MAX_NEGATIVE = 10_800;

export interface Cacheable {
  /** Seconds the reply may be served from cache. */
  ttl: number;
  /** Offsets of every TTL field to age (OPT excluded: those bytes are not a TTL). */
  ttlOffsets: number[];
  negative: boolean;
}

/**
 * How long an upstream reply may be cached: the smallest TTL among its answers, or for
 * NXDOMAIN/NODATA the SOA's min(TTL, MINIMUM) (RFC 2308). Null for replies never cached:
 * truncated, failures, denials without an SOA, or anything malformed.
 */
export function cacheable(reply: Buffer): Cacheable | null {
  const layout = layoutMessage(reply);
  if (layout === null || reply.readUInt16BE(2) & 0x0200) return null;
  const rcode = reply.readUInt16BE(2) & 0xf;
  const ttlOffsets = layout.records.filter((r) => r.type !== QType.OPT).map((r) => r.ttlOffset);
  const answers = layout.records.filter((r) => r.section === 0);
  if (rcode === Rcode.NOERROR && answers.length > 0) {
    const ttl = Math.min(MAX_POSITIVE, ...answers.map((r) => reply.readUInt32BE(r.ttlOffset)));
    return ttl > 0 ? { ttl, ttlOffsets, negative: false } : null;
  }
  if (rcode !== Rcode.NOERROR && rcode !== Rcode.NXDOMAIN) return null;
  const ttl = negativeTtl(reply, layout);
  return ttl === null || ttl === 0 ? null : { ttl: Math.min(ttl, MAX_NEGATIVE), ttlOffsets, negative: true };
}

function negativeTtl(reply: Buffer, layout: MessageLayout): number | null {
  const soa = layout.records.find((r) => r.section === 1 && r.type === QType.SOA);
  if (soa === undefined) return null;
  // SOA RDATA ends with five 32-bit numbers; MINIMUM is the last.
  if (soa.end - 4 < soa.rdataOffset) return null;
  return Math.min(reply.readUInt32BE(soa.ttlOffset), reply.readUInt32BE(soa.end - 4));
}
