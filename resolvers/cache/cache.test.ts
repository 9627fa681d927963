import test from 'ava';
import dnsPacket from 'dns-packet';
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
