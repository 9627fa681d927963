import test from 'ava';
import { connect } from 'node:net';
import dnsPacket from 'dns-packet';
import { dig, kdig } from './helpers/dig.js';
import { query, rcodeOf, tcpAsk, udpAsk } from './helpers/raw.js';
import { startDns } from './helpers/tsnet-dns.js';
import { id, records } from './fixtures.js';

const NO_FORWARD = ['--resolvers', 'local,services,ptr'];

/** Records where `many` is an alias of 40 containers: 40 A records, more than 512 bytes. */
function manyRecords() {
  const doc = records();
  for (let i = 0; i < 40; i++) {
    doc.endpoints.push({ id: id((i + 16).toString(16).padStart(2, '0')), name: `m${i}`, networks: { app: { ipv4: `172.30.0.${i + 150}`, aliases: ['many'] } } } as never);
  }
  return doc;
}

test('EDNS: the OPT record is echoed with tsnet\'s UDP size 1232', async (t) => {
  const dns = await startDns(t, records(), NO_FORWARD);
  const r = await dig(dns.port, '+bufsize=4096', 'web');
  t.regex(r.edns ?? '', /version: 0, flags:; udp: 1232/);
  const none = await dig(dns.port, '+noedns', 'web');
  t.is(none.edns, undefined, 'no OPT in the reply to a query without one');
});

test('EDNS version 1 gets BADVERS with an OPT of version 0', async (t) => {
  const dns = await startDns(t, records(), NO_FORWARD);
  const r = await dig(dns.port, '+edns=1', '+noednsneg', 'web');
  t.is(r.status, 'BADVERS');
  t.regex(r.edns ?? '', /version: 0/);
  const k = await kdig(dns.port, '+edns=1', 'web');
  t.is(k.status, 'BADVERS');
});

test('an answer over the UDP limit comes back with TC and no records; over TCP it comes whole', async (t) => {
  const dns = await startDns(t, manyRecords(), NO_FORWARD);
  const udp = await dig(dns.port, '+noedns', '+ignore', 'many');
  t.true(udp.flags.includes('tc'));
  t.is(udp.answers.length, 0);
  const retried = await dig(dns.port, '+noedns', 'many');
  t.is(retried.answers.length, 40, 'dig retries over TCP after TC');
  const tcp = await dig(dns.port, '+tcp', 'many');
  t.is(tcp.answers.length, 40);
  const big = await dig(dns.port, '+bufsize=1232', 'many');
  t.false(big.flags.includes('tc'), '40 records fit in 1232 bytes');
  t.is(big.answers.length, 40);
  const k = await kdig(dns.port, '+tcp', 'many');
  t.is(k.answers.length, 40);
});

test('TCP: several queries written at once on one connection are all answered, matched by ID', async (t) => {
  const dns = await startDns(t, records(), NO_FORWARD);
  const names = ['web', 'www', 'api', 'tasks.api', 'pg'];
  const replies = await tcpAsk(dns.port, names.map((n, i) => query(n, 'A', 100 + i)));
  const byId = new Map(replies.map((r) => [r.readUInt16BE(0), dnsPacket.decode(r)]));
  names.forEach((n, i) => t.is(byId.get(100 + i)?.questions?.[0]?.name, n));
});

test('TCP: an idle connection is closed by the server', async (t) => {
  const dns = await startDns(t, records(), NO_FORWARD);
  const closed = await new Promise<boolean>((resolve) => {
    const conn = connect(dns.port, '127.0.0.1');
    const timer = setTimeout(() => resolve(false), 15_000);
    conn.on('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
    conn.on('error', () => {});
  });
  t.true(closed);
});

test('malformed queries: FORMERR when the header parses, nothing for short packets or responses', async (t) => {
  const dns = await startDns(t, records(), NO_FORWARD);
  t.is(await udpAsk(dns.port, Buffer.from([1, 2, 3]), 300), null, 'under 12 bytes: no reply');
  const response = query('web');
  response.writeUInt16BE(response.readUInt16BE(2) | 0x8000, 2);
  t.is(await udpAsk(dns.port, response, 300), null, 'QR=1: no reply');
  const twoQuestions = dnsPacket.encode({ id: 7, type: 'query', questions: [{ name: 'a', type: 'A' }, { name: 'b', type: 'A' }] });
  t.is(rcodeOf((await udpAsk(dns.port, twoQuestions))!), 1, 'QDCOUNT 2: FORMERR');
  const cut = query('web').subarray(0, 16);
  const formerr = (await udpAsk(dns.port, cut))!;
  t.is(rcodeOf(formerr), 1, 'question cut short: FORMERR');
  t.is(formerr.readUInt16BE(0), 4242, 'the ID is echoed');
  const stillAlive = await dig(dns.port, 'web');
  t.is(stillAlive.status, 'NOERROR');
});

test('an opcode other than QUERY gets NOTIMP', async (t) => {
  const dns = await startDns(t, records(), NO_FORWARD);
  const notify = query('web');
  notify.writeUInt16BE((notify.readUInt16BE(2) & ~0x7800) | (4 << 11), 2);
  const reply = (await udpAsk(dns.port, notify))!;
  t.is(rcodeOf(reply), 4);
  t.is((reply.readUInt16BE(2) >> 11) & 0xf, 4, 'the opcode is echoed');
  const status = await dig(dns.port, '+opcode=2', 'web');
  t.is(status.status, 'NOTIMP');
});
