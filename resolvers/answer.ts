import type dnsPacket from 'dns-packet';
import type { NameEntry, WeightedAddress } from '../src/registry/name-index.js';
import type { Reply, Resolver, ResolverPlugin } from '../src/server/resolver.js';
import { QClass, QType, Rcode } from '../src/wire/constants.js';
import type { Query } from '../src/wire/query.js';
import { encodeReply } from '../src/wire/reply.js';

/** Answers only for class IN (and ANY): other classes are not ours. */
export const ownsClass = (q: Query): boolean => q.qclass === QClass.IN || q.qclass === QClass.ANY;

/**
 * An authoritative reply for a name the registry holds, replayable until the next change.
 * With `weights`, the answers are same-sized address records the server reorders per reply.
 */
export function authoritative(
  q: Query,
  resolver: string,
  answers: dnsPacket.Answer[],
  additionals: dnsPacket.Answer[] = [],
  weights: readonly number[] | null = null,
): Reply {
  const bytes = encodeReply(q, { rcode: Rcode.NOERROR, authoritative: true, answers, additionals });
  let shuffle = null;
  if (weights !== null && answers.length > 1) {
    // Each owner is a pointer to the question, so each record is 2 + 10 header bytes + address.
    const rdlen = answers[0]!.type === 'AAAA' ? 16 : 4;
    shuffle = { start: q.questionEnd, size: 12 + rdlen, weights };
  }
  return { bytes, rcode: Rcode.NOERROR, resolver, replayable: { shuffle } };
}

function addresses(q: Query, type: 'A' | 'AAAA', list: readonly WeightedAddress[], ttl: number, resolver: string): Reply {
  const answers = list.map((a): dnsPacket.Answer => ({ name: q.name, type, ttl, data: a.ip }));
  return authoritative(q, resolver, answers, [], list.map((a) => a.weight));
}

function srv(q: Query, entry: NameEntry, ttl: number, resolver: string): Reply {
  const answers: dnsPacket.Answer[] = [];
  const glue: dnsPacket.Answer[] = [];
  for (const t of entry.srv ?? []) {
    answers.push({ name: q.name, type: 'SRV', ttl, data: { priority: 0, weight: t.weight, port: t.port, target: t.target } });
    if (glue.some((g) => g.name === t.target)) continue;
    for (const ip of t.v4) glue.push({ name: t.target, type: 'A', ttl, data: ip });
    for (const ip of t.v6) glue.push({ name: t.target, type: 'AAAA', ttl, data: ip });
  }
  return authoritative(q, resolver, answers, glue);
}

/**
 * The reply for a name that exists: its addresses or SRV records, or NOERROR with no answer
 * (NODATA) when it has none of the asked type. Never NXDOMAIN, never forwarded.
 */
export function answerEntry(q: Query, entry: NameEntry, ttl: number, resolver: string): Reply {
  if (entry.srv !== null) {
    return q.type === QType.SRV || q.type === QType.ANY ? srv(q, entry, ttl, resolver) : authoritative(q, resolver, []);
  }
  switch (q.type) {
    case QType.A:
      return addresses(q, 'A', entry.v4, ttl, resolver);
    case QType.AAAA:
      return addresses(q, 'AAAA', entry.v6, ttl, resolver);
    case QType.ANY: {
      const all = [...entry.v4.map((a) => ['A', a] as const), ...entry.v6.map((a) => ['AAAA', a] as const)];
      return authoritative(q, resolver, all.map(([type, a]) => ({ name: q.name, type, ttl, data: a.ip })));
    }
    default:
      return authoritative(q, resolver, []);
  }
}

/** A resolver over one kind of registry name: `local` (endpoints) and `services` are both this. */
export function registryNames(name: string, kind: 'endpoints' | 'services'): ResolverPlugin {
  return {
    name,
    setup({ registry, ttl }): Resolver {
      return {
        name,
        bypassable: true,
        resolve(q, ctx, next) {
          const entry = ownsClass(q) ? registry.lookup(ctx.scope, kind, q.name) : undefined;
          return entry === undefined ? next() : answerEntry(q, entry, ttl, name);
        },
      };
    },
  };
}
