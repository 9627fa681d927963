import { LRUCache } from 'lru-cache';
import type { Reply, Resolver, ResolverPlugin } from '../../src/server/resolver.js';
import type { Query } from '../../src/wire/query.js';
import { replyFor } from '../../src/wire/reply.js';
import { cacheable } from './ttl.js';

interface Entry {
  bytes: Buffer;
  storedAt: number;
  /** Seconds it may be served (its smallest TTL, or the SOA's for a denial). */
  ttl: number;
  ttlOffsets: number[];
  rcode: number;
}

/** What the answer depends on: who we ask, the question, and whether an OPT (and DO) was sent. */
const keyOf = (q: Query, upstreams: string): string => q.key + (q.edns === null ? '-' : q.edns.dnssecOk ? 'd' : 'e') + upstreams;

/** A cached reply, aged: TTLs lowered by the seconds it has been held, the asker's ID, RD and question case. */
function serve(q: Query, e: Entry, elapsed: number): Reply {
  const out = replyFor(q, e.bytes);
  if (elapsed > 0) for (const off of e.ttlOffsets) out.writeUInt32BE(Math.max(0, out.readUInt32BE(off) - elapsed), off);
  return { bytes: out, rcode: e.rcode, resolver: 'cache' };
}

/**
 * Caches forwarded replies by their TTL, and denials by their SOA (RFC 2308). Names the registry
 * owns are answered before this resolver and never reach it, so a registry change is never hidden.
 */
export const cache: ResolverPlugin = {
  name: 'cache',
  setup({ cacheSize, onCache }): Resolver {
    const entries = new LRUCache<string, Entry>({ max: Math.max(1, cacheSize) });
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
          const c = reply.resolver === 'forward' && q.questionEnd <= reply.bytes.length ? cacheable(reply.bytes) : null;
          if (c !== null) {
            entries.set(key, { bytes: reply.bytes, storedAt: performance.now(), ttl: c.ttl, ttlOffsets: c.ttlOffsets, rcode: reply.rcode });
          }
          return reply;
        });
      },
    };
  },
};
