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
  let replies = 0;
  client.on('message', () => replies++);

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
  for (let i = 0; i < packets.length; i += 100) {
    await Promise.all(packets.slice(i, i + 100).map((p) => new Promise((r) => client.send(p, listener.port, '127.0.0.1', r))));
    await new Promise((r) => setImmediate(r));
  }
  await new Promise((r) => setTimeout(r, 300));
  t.true(replies <= packets.length, `${replies} replies to ${packets.length} datagrams`);
  t.true(replies > 0);

  const answer = await new Promise<Buffer>((resolve) => {
    client.removeAllListeners('message');
    client.once('message', resolve);
    client.send(dnsPacket.encode({ id: 77, type: 'query', questions: [{ name: 'web', type: 'A' }] }), listener.port, '127.0.0.1');
  });
  t.deepEqual(dnsPacket.decode(answer).answers?.map((a) => a.data), ['172.30.0.2']);
});
