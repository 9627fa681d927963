import { LRUCache } from 'lru-cache';
import type { Reply, Resolver, ResolverPlugin } from '../../src/server/resolver.js';
import type { Query } from '../../src/wire/query.js';
import { replyFor } from '../../src/wire/reply.js';
import { cacheable } from './ttl.js';

interface Entry {
  bytes: Buffer;
  storedAt: number;
  ttlOffsets: number[];
  rcode: number;
}

/** What the answer depends on: who we ask, the question, and whether an OPT (and DO) was sent. */
const keyOf = (q: Query, upstreams: string): string =>
  `${upstreams}|${q.name}|${q.type}|${q.qclass}|${q.edns === null ? '-' : q.edns.dnssecOk ? 'do' : 'e'}`;

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
        if (hit !== undefined) {
          onCache(true);
          return serve(q, hit, Math.floor((performance.now() - hit.storedAt) / 1000));
        }
        onCache(false);
        return Promise.resolve(next()).then((reply) => {
          const c = reply.resolver === 'forward' && q.questionEnd <= reply.bytes.length ? cacheable(reply.bytes) : null;
          if (c !== null) {
            const entry = { bytes: reply.bytes, storedAt: performance.now(), ttlOffsets: c.ttlOffsets, rcode: reply.rcode };
            entries.set(key, entry, { ttl: c.ttl * 1000 });
          }
          return reply;
        });
      },
    };
  },
};
