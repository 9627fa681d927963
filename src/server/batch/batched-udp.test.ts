import test from 'ava';
import { createSocket, type Socket } from 'node:dgram';
import dnsPacket from 'dns-packet';
import { Registry } from '../../registry/registry.js';
import type { EndpointSpec } from '../../registry/types.js';
import { dig, digBlocking } from '../../../test/helpers/dig.js';
import { startUpstream } from '../../../test/helpers/upstream.js';
import { createServer, type ServerOptions } from '../server.js';
import { parseUpstream } from '../upstreams.js';

const web = (ipv4: string): EndpointSpec => ({ id: 'a1b2c3d4e5f6', name: 'web', networks: { app: { ipv4 } } });
const tasks = Array.from({ length: 40 }, (_, i) => ({ id: `t${i}`, ipv4: `172.30.1.${i + 1}` }));
const registry = (): Registry =>
  Registry.fromRecords({
    networks: [{ name: 'app', subnet: '172.30.0.0/16' }, { name: 'db' }],
    endpoints: [web('172.30.0.2'), { id: 'b1b2c3d4e5f6', name: 'pg', networks: { db: { ipv4: '10.9.0.2' } } }],
    services: [{ name: 'many', network: 'app', mode: 'dnsrr', tasks }],
  });

interface Answer {
  rcode: string;
  tc: boolean;
  addresses: string[];
}

/** A client socket asking one query at a time over UDP. */
async function client(family: 'udp4' | 'udp6' = 'udp4'): Promise<{ ask(port: number, name: string, opts?: { edns?: number; address?: string; timeoutMs?: number }): Promise<Answer | null>; close(): void; socket: Socket }> {
  const socket = createSocket(family);
  await new Promise<void>((r) => socket.bind(0, r));
  let id = 0;
  return {
    socket,
    close: () => socket.close(),
    ask: (port, name, { edns, address = family === 'udp4' ? '127.0.0.1' : '::1', timeoutMs = 1000 } = {}) =>
      new Promise((resolve) => {
        const want = (id = (id + 1) & 0xffff);
        const query = dnsPacket.encode({ type: 'query', id: want, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name }], ...(edns === undefined ? {} : { additionals: [{ type: 'OPT', name: '.', udpPayloadSize: edns }] }) } as dnsPacket.Packet);
        const timer = setTimeout(() => (socket.off('message', on), resolve(null)), timeoutMs);
        const on = (msg: Buffer): void => {
          const r = dnsPacket.decode(msg);
          if (r.id !== want) return;
          clearTimeout(timer);
          socket.off('message', on);
          resolve({ rcode: r.rcode ?? 'NOERROR', tc: ((r.flags ?? 0) & dnsPacket.TRUNCATED_RESPONSE) !== 0, addresses: (r.answers ?? []).filter((a) => a.type === 'A').map((a) => a.data as string) });
        };
        socket.on('message', on);
        socket.send(query, port, address);
      }),
  };
}

async function serve(t: { teardown(f: () => Promise<void> | void): void }, options: ServerOptions = {}) {
  const reg = options.registry ?? registry();
  const server = createServer({ upstreams: [], ...options, registry: reg });
  t.teardown(() => server.close());
  return { server, registry: reg };
}

const replays = async (text: Promise<string>): Promise<number> => Number(/tsnet_dns_queries_total\{type="A",rcode="NOERROR",resolver="replay"\} (\d+)/.exec(await text)?.[1] ?? 0);

test('the batched path answers registry names from its worker, and the next query after a change has the new state', async (t) => {
  const { server, registry: reg } = await serve(t);
  const { port } = await server.listen({ address: '127.0.0.1', port: 0 });
  const c = await client();
  t.teardown(() => c.close());
  for (let i = 0; i < 5; i++) t.deepEqual((await c.ask(port, 'web'))?.addresses, ['172.30.0.2']);
  // The worker reports what it answered once a second.
  await new Promise((r) => setTimeout(r, 1200));
  t.true((await replays(server.metrics.text())) >= 3, 'the repeats were replayed (the worker or the main thread)');
  for (let i = 0; i < 300; i++) {
    const ip = `172.30.0.${10 + (i % 2)}`;
    reg.setEndpoint(web(ip));
    // The first is answered by the main thread (the worker's table went with the change), the second from the worker's.
    t.deepEqual((await c.ask(port, 'web'))?.addresses, [ip], `change ${i}, first query`);
    t.deepEqual((await c.ask(port, 'web'))?.addresses, [ip], `change ${i}, second query`);
  }
});

test('on the batched path a long answer is truncated for a plain UDP asker and whole within its EDNS size, replayed too', async (t) => {
  const { server } = await serve(t);
  const { port } = await server.listen({ address: '127.0.0.1', port: 0 });
  const c = await client();
  t.teardown(() => c.close());
  for (let i = 0; i < 3; i++) {
    const plain = await c.ask(port, 'many');
    t.true(plain?.tc, 'TC without EDNS (40 A records are 656 bytes)');
    t.true((plain?.addresses.length ?? 99) < 40);
    const large = await c.ask(port, 'many', { edns: 4096 });
    t.false(large?.tc);
    t.is(large?.addresses.length, 40);
  }
});

test('one worker serves many listeners, each with its scope; a closed one stops answering and its port is free', async (t) => {
  const { server } = await serve(t);
  const listeners = await Promise.all(Array.from({ length: 20 }, (_, i) => server.listen({ address: '127.0.0.1', port: 0, scope: [i % 2 === 0 ? 'app' : 'db'] })));
  const c = await client();
  t.teardown(() => c.close());
  for (let round = 0; round < 2; round++) {
    for (const [i, l] of listeners.entries()) {
      t.deepEqual((await c.ask(l.port, i % 2 === 0 ? 'web' : 'pg'))?.addresses, [i % 2 === 0 ? '172.30.0.2' : '10.9.0.2']);
      t.is((await c.ask(l.port, i % 2 === 0 ? 'pg' : 'web'))?.rcode, 'SERVFAIL', 'a name of the other scope is not this listener\'s: it would be forwarded, and there is no upstream');
    }
  }
  const closed = listeners.slice(0, 10);
  await Promise.all(closed.map((l) => l.close()));
  for (const l of closed) {
    t.is(await c.ask(l.port, 'web', { timeoutMs: 300 }), null, `port ${l.port} answers no more`);
    const s = createSocket('udp4');
    await new Promise<void>((resolve, reject) => (s.once('error', reject), s.bind(l.port, '127.0.0.1', resolve)));
    s.close();
  }
  for (const l of listeners.slice(10)) t.truthy(await c.ask(l.port, 'pg'));
});

test('the batched path keeps the rate limit: over it most replies are dropped and every second one slips out truncated', async (t) => {
  const { server } = await serve(t, { rateLimit: 5 });
  const { port } = await server.listen({ address: '127.0.0.1', port: 0 });
  const c = await client();
  t.teardown(() => c.close());
  t.deepEqual((await c.ask(port, 'web'))?.addresses, ['172.30.0.2'], 'the first is answered (and its answer stored)');
  // 60 more at once, well inside a second: about 4 tokens are left, the rest refused.
  let whole = 0;
  let truncated = 0;
  c.socket.on('message', (m: Buffer) => (((dnsPacket.decode(m).flags ?? 0) & dnsPacket.TRUNCATED_RESPONSE) !== 0 ? truncated++ : whole++));
  const query = dnsPacket.encode({ type: 'query', id: 7, questions: [{ type: 'A', name: 'web' }] });
  for (let i = 0; i < 60; i++) c.socket.send(query, port, '127.0.0.1');
  await new Promise((r) => setTimeout(r, 500));
  t.true(whole <= 6, `${whole} whole replies`);
  t.true(truncated >= 25 && truncated <= 30, `${truncated} truncated: every second refused one`);
});

test('the batched path serves IPv6 listeners; without it plain dgram sockets give the same answers', async (t) => {
  const { server } = await serve(t);
  const v6 = await server.listen({ address: '::1', port: 0 });
  const c6 = await client('udp6');
  t.teardown(() => c6.close());
  for (let i = 0; i < 3; i++) t.deepEqual((await c6.ask(v6.port, 'web'))?.addresses, ['172.30.0.2']);
  const plain = await serve(t, { udpBatch: false });
  const l = await plain.server.listen({ address: '127.0.0.1', port: 0 });
  const c = await client();
  t.teardown(() => c.close());
  for (let i = 0; i < 3; i++) t.deepEqual((await c.ask(l.port, 'web'))?.addresses, ['172.30.0.2']);
});

test.serial('on the batched path a forwarded reply the cache hit once is answered by the worker while the main thread is busy, aged; CD and DO queries and one past its TTL go to the main thread', async (t) => {
  const upstream = await startUpstream(t, { ttl: 6 });
  const { server, registry: reg } = await serve(t, { upstreams: [parseUpstream(upstream.label)] });
  const { port } = await server.listen({ address: '127.0.0.1', port: 0 });
  const first = await dig(port, 'ext.example', 'A');
  t.deepEqual(first.answers.map((a) => [a.data, a.ttl]), [['127.77.0.1', 6]], 'forwarded');
  t.is(digBlocking(port, 'ext.example', 'A'), null, 'a first answer is not copied to the worker: a name asked once costs it nothing');
  // The main thread's cache answers it, and copies it to the worker's table.
  t.deepEqual((await dig(port, 'ext.example', 'A')).answers.map((a) => a.data), ['127.77.0.1']);
  // From here dig runs while this thread (the main one: the pipeline and the fake upstream) waits on it.
  t.deepEqual(digBlocking(port, 'ext.example', 'A')?.answers.map((a) => a.data), ['127.77.0.1'], 'answered by the worker');
  await new Promise((r) => setTimeout(r, 1100));
  const aged = digBlocking(port, 'ext.example', 'A');
  t.true(aged !== null && aged.answers[0]!.ttl <= 5, `aged by the time held: TTL ${aged?.answers[0]?.ttl}`);
  t.is(digBlocking(port, 'ext.example', 'A', '+dnssec'), null, 'DO makes another cache entry: the first with DO goes to the main thread, busy');
  t.is(digBlocking(port, 'ext.example', 'A', '+cd'), null, 'CD is in the cache key, not the worker’s: the main thread’s, busy');
  // Six seconds after the first answer.
  await new Promise((r) => setTimeout(r, 3000));
  t.is(digBlocking(port, 'ext.example', 'A'), null, 'past its TTL the worker no longer has it');
  const fresh = await dig(port, 'ext.example', 'A');
  t.true(fresh.answers[0]!.ttl >= 5, `kept again: TTL ${fresh.answers[0]?.ttl}`);
  t.is(upstream.udpQueries, 4, 'asked upstream: the first, the DO and CD ones and the one past the TTL, once the main thread ran them');
  t.deepEqual(digBlocking(port, 'ext.example', 'A')?.answers.map((a) => a.data), ['127.77.0.1'], 'and in the worker’s table again after its first hit');
  await new Promise((r) => setTimeout(r, 1200));
  const text = await server.metrics.text();
  t.regex(text, /tsnet_dns_queries_total\{type="A",rcode="NOERROR",resolver="cache"\} [1-9]/, 'the worker’s cache answers are counted as the cache’s');
  t.regex(text, /tsnet_dns_cache_total\{result="hit"\} [1-9]/);
  reg.setEndpoint({ id: 'c1b2c3d4e5f6', name: 'ext.example', networks: { app: { ipv4: '172.30.0.99' } } });
  t.deepEqual((await dig(port, 'ext.example', 'A')).answers.map((a) => a.data), ['172.30.0.99'], 'a registry name made since comes first');
});
