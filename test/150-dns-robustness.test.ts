import test from 'ava';
import { createSocket } from 'node:dgram';
import dnsPacket from 'dns-packet';
import fc from 'fast-check';
import { createServer, Registry } from '../src/index.js';
import { records } from './fixtures.js';

test('thousands of random and mutated datagrams: the server answers at most once each, never crashes, then still answers', async (t) => {
  const server = createServer({ registry: Registry.fromRecords(records()), resolvers: ['local', 'services', 'ptr'] });
  const listener = await server.listen({ address: '127.0.0.1', port: 0 });
  t.teardown(() => server.close());
  const client = createSocket('udp4');
  await new Promise<void>((r) => client.bind(0, '127.0.0.1', r));
  t.teardown(() => client.close());
  const replies = new Map<number, number>();
  client.on('message', (m: Buffer) => m.length >= 2 && replies.set(m.readUInt16BE(0), (replies.get(m.readUInt16BE(0)) ?? 0) + 1));

  const seed = dnsPacket.encode({ id: 1, type: 'query', flags: 0x100, questions: [{ name: 'web.app', type: 'A' }], additionals: [{ name: '.', type: 'OPT', udpPayloadSize: 1232 } as dnsPacket.Answer] });
  const packets = fc.sample(
    fc.oneof(
      fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
      fc.array(fc.tuple(fc.nat(seed.length - 1), fc.nat(255)), { minLength: 1, maxLength: 4 }).map((flips) => {
        const b = Buffer.from(seed);
        for (const [at, v] of flips) b[at] = v;
        return b;
      }),
    ),
    { numRuns: 5000, seed: 42 },
  );
  // Each datagram gets an ID of its own (the ID does not change how a packet parses), so a reply names the one it answers.
  packets.forEach((p, i) => p.length >= 2 && p.writeUInt16BE(1000 + i, 0));
  for (let i = 0; i < packets.length; i += 100) {
    await Promise.all(packets.slice(i, i + 100).map((p) => new Promise((r) => client.send(p, listener.port, '127.0.0.1', r))));
    await new Promise((r) => setImmediate(r));
  }

  // A valid query after all of them, sent again until answered (the flood overflows the socket's
  // buffer, which drops datagrams): by its answer the server has read every datagram before it.
  const answer = await new Promise<Buffer>((resolve) => {
    const sentinel = dnsPacket.encode({ id: 77, type: 'query', questions: [{ name: 'web', type: 'A' }] });
    const ask = (): void => client.send(sentinel, listener.port, '127.0.0.1');
    const again = setInterval(ask, 50);
    client.on('message', (m: Buffer) => m.length >= 2 && m.readUInt16BE(0) === 77 && (clearInterval(again), resolve(m)));
    ask();
  });
  const twice = [...replies].filter(([id, n]) => id !== 77 && n > 1);
  const unasked = [...replies.keys()].filter((id) => id !== 77 && (id < 1000 || id >= 1000 + packets.length || packets[id - 1000]!.length < 2));
  t.deepEqual(twice, [], 'datagrams answered more than once (id, replies)');
  t.deepEqual(unasked, [], 'replies naming no datagram sent');
  t.true(replies.size > 1, `${replies.size - 1} of ${packets.length} datagrams were answered`);
  t.deepEqual(dnsPacket.decode(answer).answers?.map((a) => a.data), ['172.30.0.2']);
});
