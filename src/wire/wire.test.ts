import test from 'ava';
import fc from 'fast-check';
import dnsPacket from 'dns-packet';
import { layoutMessage } from './layout.js';
import { parseQuery } from './query.js';
import { emptyReply, truncate } from './reply.js';
import { readName } from './name.js';

const label = fc.stringMatching(/^[a-zA-Z0-9_-]{1,20}$/);
const name = fc.array(label, { minLength: 1, maxLength: 5 }).map((l) => l.join('.'));
const TYPES: Record<string, number> = { A: 1, AAAA: 28, MX: 15, TXT: 16, SRV: 33, PTR: 12, ANY: 255 };
const type = fc.constantFrom<dnsPacket.RecordType>('A', 'AAAA', 'MX', 'TXT', 'SRV', 'PTR', 'ANY');

test('parseQuery: any byte string parses, errors or drops; it never throws', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
      const r = parseQuery(Buffer.from(bytes));
      return r.kind === 'query' || r.kind === 'error' || r.kind === 'drop';
    }),
    { numRuns: 20_000 },
  );
  t.pass();
});

test('parseQuery: a mutated valid query never throws, and the error reply to it is well-formed', (t) => {
  fc.assert(
    fc.property(name, type, fc.array(fc.tuple(fc.nat(80), fc.nat(255)), { maxLength: 6 }), (n, ty, flips) => {
      const raw = dnsPacket.encode({ id: 1, type: 'query', questions: [{ name: n, type: ty }], additionals: [{ name: '.', type: 'OPT', udpPayloadSize: 4096 } as dnsPacket.Answer] });
      for (const [at, v] of flips) if (at < raw.length) raw[at] = v;
      const r = parseQuery(raw);
      if (r.kind === 'error') dnsPacket.decode(emptyReply(raw, r.rcode, r.questionEnd, r.edns));
      return true;
    }),
    { numRuns: 20_000 },
  );
  t.pass();
});

test('parseQuery: a query built by dns-packet reads back with its name lowercased and its type', (t) => {
  fc.assert(
    fc.property(name, type, (n, ty) => {
      const r = parseQuery(dnsPacket.encode({ id: 9, type: 'query', questions: [{ name: n, type: ty }] }));
      return r.kind === 'query' && r.query.name === n.toLowerCase() && r.query.type === TYPES[ty];
    }),
  );
  t.pass();
});

test('layoutMessage and truncate never throw on any bytes, and truncate respects the limit for messages that lay out', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0, maxLength: 1500 }), fc.integer({ min: 512, max: 1232 }), (bytes, limit) => {
      const buf = Buffer.from(bytes);
      layoutMessage(buf);
      const out = truncate(buf, limit);
      return out.length <= Math.max(limit, 12) || layoutMessage(buf) === null;
    }),
    { numRuns: 20_000 },
  );
  t.pass();
});

test('readName refuses pointer loops and forward pointers', (t) => {
  const loop = Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xc0, 12]);
  t.is(readName(loop, 12), null);
  const forward = Buffer.from([0xc0, 4, 0, 0, 1, 0x61, 0]);
  t.is(readName(forward, 0), null);
  const ok = Buffer.from([1, 0x41, 0, 0xc0, 0]);
  t.deepEqual(readName(ok, 3), { name: 'a', end: 5 });
});

test('readName escapes a dot inside a label so it cannot pass for two labels', (t) => {
  const buf = Buffer.from([3, 0x61, 0x2e, 0x62, 0]);
  t.deepEqual(readName(buf, 0), { name: 'a\\.b', end: 5 });
});
