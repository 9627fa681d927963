import { LRUCache } from 'lru-cache';
import { cachedAge, rcodeReply, type Reply, type Resolver, type ResolverPlugin } from '../../src/server/resolver.js';
import { Flag } from '../../src/wire/constants.js';
import type { Query } from '../../src/wire/query.js';
import { relayTo } from '../../src/wire/reply.js';
import { decodeEntry, encodeEntry, entryBytes, storedAt, ttlOf } from './entry.js';
import { cacheable } from './ttl.js';

/**
 * What lru-cache and its Map hold per entry besides the entry string and the key: measured as
 * 326 bytes a 60-byte reply's entry takes in all, less the two strings (2026-12-03).
 */
const ENTRY_OVERHEAD = 170;

/**
 * What the answer depends on: who was asked and what tsnet sent them, which is the question
 * (name folded, type and class as sent), DO and CD. The asker's other EDNS options never
 * leave tsnet, so they are not in the key.
 */
function keyOf(q: Query, upstreams: string): string {
  const key = q.key + (q.edns?.dnssecOk ? 'd' : '-') + (q.flags & Flag.CD ? 'c' : '-') + upstreams;
  // Made flat: a concatenation is a tree of strings (three here, 32 bytes each, over the
  // parts), which a Map keeps as it is; converting it to a number flattens it in place, and the
  // next scavenge drops the tree (60 bytes less per entry, measured).
  Number(key);
  return key;
}

/**
 * A cached reply, aged: TTLs lowered by the seconds it has been held, the asker's ID, RD, CD,
 * question case and OPT; with the kept reply itself, which the batched UDP path replays too.
 * Only a hit offers it, not the first answer: a name asked once (a unique workload) then costs
 * the batched path no copy to its worker and no table space there.
 */
function serve(q: Query, entry: string, elapsed: number): Reply {
  const e = decodeEntry(entry);
  const cached = { kept: e, ttlOffsets: e.ttlOffsets, storedAt: performance.timeOrigin + storedAt(entry), ttl: ttlOf(entry) };
  return { bytes: relayTo(q, e, elapsed, e.ttlOffsets), rcode: e.rcode, resolver: 'cache', cached };
}

/**
 * Misses being asked upstream, in a fixed table by a hash of their key: a Map set and deleted at
 * every miss cost 25–40 MB of RSS and a tenth of the rate under a unique-name load (measured);
 * a slot two keys share holds the later one, and the earlier's copies just ask again.
 */
interface Asking {
  key: string;
  answer: Promise<Reply>;
}
const ASKING_SLOTS = 4096;
function slotOf(key: string): number {
  let h = 0;
  for (let i = 0; i < key.length; i++) h = (Math.imul(h, 31) + key.charCodeAt(i)) | 0;
  return h & (ASKING_SLOTS - 1);
}

/**
 * The answer for a query that waited on another's identical one (same key): the upstream's reply
 * made into its own (ID, question case, OPT), or the same failure.
 */
function shared(q: Query, reply: Reply): Reply {
  if (reply.upstream === undefined) return rcodeReply(q, reply.rcode, reply.resolver);
  return { bytes: relayTo(q, reply.upstream), rcode: reply.upstream.rcode, resolver: reply.resolver };
}

/**
 * Caches forwarded replies by their TTL, and denials by their SOA (RFC 2308), within a byte
 * budget as well as an entry count. Names the registry owns are answered before this resolver
 * and never reach it, so a registry change is never hidden. A miss whose question is already
 * being asked of the same servers waits for that answer instead of asking again: one query in
 * flight per question, as unbound and dnsmasq do, so a burst of one name costs the upstream one
 * query and a spoofer gets one reply to race, not one per copy.
 */
export const cache: ResolverPlugin = {
  name: 'cache',
  setup({ cacheSize, cacheBytes, onCache }): Resolver {
    const entries = new LRUCache<string, string>({
      max: Math.max(1, cacheSize),
      maxSize: Math.max(1, cacheBytes),
      // What the entry takes on the heap: its string, its key (one byte a character) and the list's share.
      sizeCalculation: (e, key) => entryBytes(e) + 16 + key.length + ENTRY_OVERHEAD,
    });
    const asking: (Asking | undefined)[] = new Array<Asking | undefined>(ASKING_SLOTS).fill(undefined);
    /** The kept answer to `q`, aged, unless there is none or it ran out. */
    const fromCache = (q: Query, key: string): Reply | undefined => {
      const hit = entries.get(key);
      // Expiry is checked here rather than by lru-cache's TTL, which costs a clock read per get.
      const age = hit === undefined ? undefined : cachedAge(storedAt(hit), ttlOf(hit), performance.now());
      return hit === undefined || age === undefined ? undefined : serve(q, hit, age);
    };
    return {
      name: 'cache',
      resolve(q, ctx, next) {
        const key = keyOf(q, ctx.upstreams.key);
        const served = fromCache(q, key);
        if (served !== undefined) {
          onCache(true);
          return served;
        }
        onCache(false);
        const at = slotOf(key);
        const asked = asking[at];
        // Once answered, as a hit if the answer was kept (so the batched path learns it), else shared.
        if (asked?.key === key) return asked.answer.then((reply) => fromCache(q, key) ?? shared(q, reply));
        const mine: Asking = { key, answer: Promise.resolve(next()) };
        asking[at] = mine;
        const done = (): void => void (asking[at] === mine && (asking[at] = undefined));
        // Cleared in the handlers of the one promise there is anyway, not by a second.
        mine.answer = mine.answer.then(
          (reply) => {
            done();
            const kept = reply.upstream;
            const c = kept === undefined ? null : cacheable(kept.bytes);
            if (c !== null && kept !== undefined) {
              entries.set(key, encodeEntry(kept.bytes, performance.now(), c.ttl, kept.rcode, c.ttlOffsets));
            }
            return reply;
          },
          (err: unknown) => {
            done();
            throw err;
          },
        );
        return mine.answer;
      },
    };
  },
};
