import dnsPacket from 'dns-packet';
import { pino } from 'pino';
import { Registry } from '../../src/registry/registry.js';
import type { QueryContext, Reply, Resolver, ResolverPlugin, ResolverSetup } from '../../src/server/resolver.js';
import { upstreamSet } from '../../src/server/upstreams.js';
import { parseQuery, type Query } from '../../src/wire/query.js';
import { emptyReply } from '../../src/wire/reply.js';

/** A query as the server would hand it to a resolver. */
export function queryOf(name: string, type: dnsPacket.RecordType = 'A', edns = false): Query {
  const raw = dnsPacket.encode({
    id: 7,
    type: 'query',
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ name, type, class: 'IN' }],
    additionals: edns ? [{ name: '.', type: 'OPT', udpPayloadSize: 1232, flags: 0, options: [] } as dnsPacket.Answer] : [],
  });
  const parsed = parseQuery(raw);
  if (parsed.kind !== 'query') throw new Error(`test query ${name} did not parse`);
  return parsed.query;
}

export const setupOf = (registry: Registry, over: Partial<ResolverSetup> = {}): ResolverSetup => ({
  registry,
  logger: pino({ level: 'silent' }),
  ttl: 5,
  cacheSize: 100,
  maxInflight: 10,
  onUpstreamFailure: () => {},
  onCache: () => {},
  ...over,
});

/** A `next` that records that it was called and answers with `rcode` (NXDOMAIN by default). */
export function nextStub(q: Query, rcode = 3): { next: () => Reply; called: () => boolean } {
  let called = false;
  return {
    next: () => {
      called = true;
      return { bytes: emptyReply(q.raw, rcode, q.questionEnd, q.edns), rcode, resolver: 'next' };
    },
    called: () => called,
  };
}

/** Runs one resolver on one query, with no sockets; returns the decoded reply and whether it passed on. */
export async function ask(plugin: ResolverPlugin | Resolver, registry: Registry, q: Query, ctx: Partial<QueryContext> = {}) {
  const resolver = 'setup' in plugin ? plugin.setup(setupOf(registry)) : plugin;
  const stub = nextStub(q);
  const reply = await resolver.resolve(q, { scope: registry.allScope, source: { address: '127.0.0.1', port: 1 }, transport: 'udp', upstreams: upstreamSet([]), ...ctx }, stub.next);
  return { reply, packet: dnsPacket.decode(reply.bytes), passed: stub.called() };
}

export { Registry };
