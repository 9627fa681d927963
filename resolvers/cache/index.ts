import { LRUCache } from 'lru-cache';
import type { Reply, Resolver, ResolverPlugin } from '../../src/server/resolver.js';
import { Flag } from '../../src/wire/constants.js';
import type { Query } from '../../src/wire/query.js';
import { relayTo } from '../../src/wire/reply.js';
import { cacheable } from './ttl.js';

interface Entry {
  /** The scrubbed upstream reply, without OPT: each asker gets tsnet's OPT for its own query. */
  bytes: Buffer;
  storedAt: number;
  /** Seconds it may be served (its smallest TTL, or the SOA's for a denial). */
  ttl: number;
  ttlOffsets: number[];
  rcode: number;
}

/**
 * What the answer depends on: who was asked and what tsnet sent them, which is the question
 * (name folded, type and class as sent), DO and CD. The asker's other EDNS options never
 * leave tsnet, so they are not in the key.
 */
const keyOf = (q: Query, upstreams: string): string =>
  q.key + (q.edns?.dnssecOk ? 'd' : '-') + (q.flags & Flag.CD ? 'c' : '-') + upstreams;

/** A cached reply, aged: TTLs lowered by the seconds it has been held, the asker's ID, RD, CD, question case and OPT. */
function serve(q: Query, e: Entry, elapsed: number): Reply {
  return { bytes: relayTo(q, e, elapsed, e.ttlOffsets), rcode: e.rcode, resolver: 'cache' };
}

/**
 * Caches forwarded replies by their TTL, and denials by their SOA (RFC 2308), within a byte
 * budget as well as an entry count. Names the registry owns are answered before this resolver
 * and never reach it, so a registry change is never hidden.
 */
export const cache: ResolverPlugin = {
  name: 'cache',
  setup({ cacheSize, cacheBytes, onCache }): Resolver {
    const entries = new LRUCache<string, Entry>({
      max: Math.max(1, cacheSize),
      maxSize: Math.max(1, cacheBytes),
      // The reply bytes, the key and about 100 bytes of entry and list overhead.
      sizeCalculation: (e, key) => e.bytes.length + key.length + e.ttlOffsets.length * 8 + 100,
    });
    return {
      name: 'cache',
      resolve(q, ctx, next) {
        const key = keyOf(q, ctx.upstreams.key);
        const hit = entries.get(key);
        // Expiry is checked here rather than by lru-cache's TTL, which costs a clock read per get.
        const elapsed = hit === undefined ? 0 : Math.floor((performance.now() - hit.storedAt) / 1000);
        if (hit !== undefined && elapsed < hit.ttl) {
          onCache(true);
          return serve(q, hit, elapsed);
        }
        onCache(false);
        return Promise.resolve(next()).then((reply) => {
          const kept = reply.upstream;
          const c = kept === undefined ? null : cacheable(kept.bytes);
          if (c !== null && kept !== undefined) {
            entries.set(key, { bytes: kept.bytes, storedAt: performance.now(), ttl: c.ttl, ttlOffsets: c.ttlOffsets, rcode: kept.rcode });
          }
          return reply;
        });
      },
    };
  },
};
