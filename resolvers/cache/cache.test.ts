import test from 'ava';
import dnsPacket from 'dns-packet';
import { rcodeReply, type Reply } from '../../src/server/resolver.js';
import { upstreamSet } from '../../src/server/upstreams.js';
import { Rcode } from '../../src/wire/constants.js';
import { parseQuery, type Query } from '../../src/wire/query.js';
import { relayTo } from '../../src/wire/reply.js';
import { queryOf, Registry, setupOf } from '../../test/helpers/resolve.js';
import { decodeEntry, encodeEntry, entryBytes, storedAt, ttlOf } from './entry.js';
import { cache } from './index.js';
import { cacheable } from './ttl.js';

const reply = (extra: Partial<dnsPacket.Packet>): Buffer =>
  dnsPacket.encode({ id: 1, type: 'response', flags: 0x8180, questions: [{ name: 'x.example', type: 'A' }], ...extra });

const soa = { name: 'example', type: 'SOA' as const, ttl: 600, data: { mname: 'ns', rname: 'h', serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 45 } };

test('a positive reply is cached for its smallest answer TTL', (t) => {
  const c = cacheable(reply({ answers: [{ name: 'x.example', type: 'A', ttl: 300, data: '127.0.0.1' }, { name: 'x.example', type: 'A', ttl: 60, data: '127.0.0.2' }] }));
  t.is(c?.ttl, 60);
  t.is(c?.ttlOffsets.length, 2);
});

test('NXDOMAIN and NODATA are cached for min(SOA TTL, MINIMUM); without an SOA not at all', (t) => {
  t.is(cacheable(reply({ flags: 0x8183, authorities: [soa] }))?.ttl, 45);
  t.is(cacheable(reply({ authorities: [soa] }))?.ttl, 45);
  t.is(cacheable(reply({ flags: 0x8183 })), null);
});

test('SERVFAIL, truncated, zero-TTL and malformed replies are not cached', (t) => {
  t.is(cacheable(reply({ flags: 0x8182 })), null);
  t.is(cacheable(reply({ flags: 0x8380, answers: [{ name: 'x.example', type: 'A', ttl: 60, data: '127.0.0.1' }] })), null);
  t.is(cacheable(reply({ answers: [{ name: 'x.example', type: 'A', ttl: 0, data: '127.0.0.1' }] })), null);
  t.is(cacheable(Buffer.from([1, 2, 3])), null);
});

test('an entry keeps the reply, rcode, TTL offsets, TTL and time stored bit for bit, odd lengths and every byte value too', (t) => {
  for (const length of [0, 1, 12, 61, 512]) {
    const bytes = Buffer.from(Array.from({ length }, (_, i) => (i * 37 + 0xd8) & 0xff));
    const at = 2 ** 40 + 123.75;
    const e = encodeEntry(bytes, at, 86_400, 0x10a, [12, 300, 65_535]);
    t.deepEqual(decodeEntry(e), { bytes, rcode: 0x10a, ttlOffsets: [12, 300, 65_535] });
    t.is(storedAt(e), Math.floor(at));
    t.is(ttlOf(e), 86_400);
    t.is(entryBytes(e), 16 + 2 * (8 + 3 + Math.ceil(length / 2)));
  }
});

test('a miss whose question is already asked upstream waits for that answer: one upstream query, each asker its own ID; a failure is shared, then asked again', async (t) => {
  const resolver = cache.setup(setupOf(new Registry(), { cacheBytes: 1 << 20 }));
  const ctx = { scope: new Registry().allScope, source: { address: '127.0.0.1', port: 1 }, transport: 'udp' as const, upstreams: upstreamSet([]) };
  const withId = (id: number, name = 'x.example'): Query => {
    const raw = Buffer.from(queryOf(name).raw);
    raw.writeUInt16BE(id, 0);
    const parsed = parseQuery(raw);
    if (parsed.kind !== 'query') throw new Error('query did not parse');
    return parsed.query;
  };
  let asked = 0;
  let answer: (r: Reply) => void = () => {};
  const next = (): Promise<Reply> => {
    asked++;
    return new Promise((resolve) => (answer = resolve));
  };
  const [a, b] = [withId(7), withId(9)];
  const replies = Promise.all([resolver.resolve(a, ctx, next), resolver.resolve(b, ctx, next)]);
  const upstream = { bytes: reply({ answers: [{ name: 'x.example', type: 'A', ttl: 60, data: '127.0.0.9' }] }), rcode: 0 };
  // As forward answers: the upstream's reply made into the reply to the query it was given.
  answer({ bytes: relayTo(a, upstream), rcode: 0, resolver: 'forward', upstream });
  const decoded = (await replies).map((r) => dnsPacket.decode(r.bytes));
  t.is(asked, 1, 'asked upstream once');
  t.deepEqual(decoded.map((p) => p.id), [7, 9]);
  t.deepEqual(decoded.map((p) => p.answers?.map((x) => x.data)), [['127.0.0.9'], ['127.0.0.9']]);

  const [c, d] = [withId(11, 'y.example'), withId(13, 'y.example')];
  const failing = Promise.all([resolver.resolve(c!, ctx, next), resolver.resolve(d!, ctx, next)]);
  answer(rcodeReply(c!, Rcode.SERVFAIL, 'forward'));
  const failed = (await failing).map((r) => dnsPacket.decode(r.bytes));
  t.is(asked, 2);
  t.deepEqual(failed.map((p) => [p.id, p.rcode]), [[11, 'SERVFAIL'], [13, 'SERVFAIL']]);
  const again = resolver.resolve(c!, ctx, next);
  t.is(asked, 3, 'a failure is not kept: the next miss asks again');
  answer(rcodeReply(c!, Rcode.SERVFAIL, 'forward'));
  await again;
});
