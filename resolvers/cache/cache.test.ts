import test from 'ava';
import dnsPacket from 'dns-packet';
import { decodeEntry, encodeEntry, entryBytes, storedAt, ttlOf } from './entry.js';
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
