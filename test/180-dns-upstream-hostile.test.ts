import test, { type ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import dnsPacket from 'dns-packet';
import { createServer, parseUpstream, Registry } from '../src/index.js';
import { aFor, answer, faultUpstream, type FaultUpstream, type Handler, type Received } from './helpers/fault-upstream.js';
import { query, udpAsk, tcpAsk } from './helpers/raw.js';
import { records } from './fixtures.js';

const run = promisify(execFile);

/** An in-process server on a free loopback port forwarding to `upstreams`, closed when the test ends. */
async function serve(t: ExecutionContext, upstreams: readonly FaultUpstream[]) {
  const server = createServer({ registry: Registry.fromRecords(records()), upstreams: upstreams.map((u) => parseUpstream(u.label)) });
  const listener = await server.listen({ address: '127.0.0.1', port: 0 });
  t.teardown(() => server.close());
  return { server, port: listener.port };
}

const decode = (b: Buffer | null): dnsPacket.Packet => {
  if (b === null) throw new Error('no reply');
  return dnsPacket.decode(b);
};
const ips = (p: dnsPacket.Packet): string[] => (p.answers ?? []).filter((a) => a.type === 'A').map((a) => a.data as string);
const ok: Handler = (q) => ({ bytes: answer(q, { answers: [aFor(q, '127.77.0.2')] }) });
const ask = async (port: number, name: string, type: dnsPacket.RecordType = 'A', extra: Partial<dnsPacket.Packet> = {}) =>
  decode(await udpAsk(port, query(name, type, 4242, extra), 3000));

test('a silent first upstream is demoted after the first query: later queries go to the healthy one without waiting, and the failure is counted', async (t) => {
  const silent = await faultUpstream(t, () => null);
  const good = await faultUpstream(t, ok);
  const { server, port } = await serve(t, [silent, good]);
  const times: number[] = [];
  for (let i = 0; i < 30; i++) {
    const started = performance.now();
    t.deepEqual(ips(await ask(port, `q${i}.fwd.example`)), ['127.77.0.2']);
    times.push(performance.now() - started);
  }
  // The silent server was asked for the first query, then only by the occasional probe.
  t.true(silent.received.length <= 3, `silent server asked ${silent.received.length} times`);
  t.is(good.received.length, 30);
  times.sort((a, b) => a - b);
  t.log(`p50 ${times[15]!.toFixed(1)} ms, first ${times.at(-1)!.toFixed(0)} ms`);
  // Ordering, not a clock: the median query was answered before a hedge (>= 200 ms) could even fire.
  t.true(times[15]! < 200, `p50 ${times[15]} ms`);
  t.regex(await server.metrics.text(), new RegExp(`tsnet_dns_upstream_failures_total\\{upstream="${silent.label}",reason="timeout"\\} [1-9]`));
});

test('a demoted upstream is probed and, once it answers again, is asked first again', async (t) => {
  let alive = false;
  const first = await faultUpstream(t, (q) => (alive ? { bytes: answer(q, { answers: [aFor(q, '127.77.0.1')] }) } : null));
  const second = await faultUpstream(t, ok);
  const { port } = await serve(t, [first, second]);
  t.deepEqual(ips(await ask(port, 'down.fwd.example')), ['127.77.0.2']);
  alive = true;
  // The first demotion lasts about a second; keep asking until a probe brings it back.
  let back = false;
  for (let i = 0; i < 60 && !back; i++) {
    await new Promise((r) => setTimeout(r, 100));
    back = ips(await ask(port, `up${i}.fwd.example`))[0] === '127.77.0.1';
  }
  t.true(back, 'the recovered first server answers again');
  const before = second.received.length;
  for (let i = 0; i < 5; i++) t.deepEqual(ips(await ask(port, `after${i}.fwd.example`)), ['127.77.0.1']);
  t.is(second.received.length, before, 'the healthy first server is asked first again');
});

test("tsnet sends its own OPT upstream (UDP 1232, DO copied) and none of the asker's options; the upstream's options never reach an asker", async (t) => {
  const cookie = { code: 10, data: Buffer.from('0123456789abcdef', 'hex') };
  const up = await faultUpstream(t, (q) => ({
    bytes: answer(q, { answers: [aFor(q)], additionals: [{ name: '.', type: 'OPT', udpPayloadSize: 4096, flags: 0, options: [{ code: 10, data: Buffer.from('feedfacefeedfacefeedfacefeedface', 'hex') }] } as dnsPacket.Answer] }),
  }));
  const { port } = await serve(t, [up]);
  const ecs = { code: 8, data: Buffer.from([0, 1, 24, 0, 192, 0, 2]) };
  const a = await ask(port, 'opts.fwd.example', 'A', {
    additionals: [{ name: '.', type: 'OPT', udpPayloadSize: 4096, flags: dnsPacket.DNSSEC_OK, options: [cookie, ecs] } as unknown as dnsPacket.Answer],
  });
  const sent = up.received[0]!.packet.additionals!.find((r) => r.type === 'OPT') as unknown as { udpPayloadSize: number; flags: number; options: unknown[] };
  t.is(sent.udpPayloadSize, 1232);
  t.is(sent.flags & dnsPacket.DNSSEC_OK, dnsPacket.DNSSEC_OK, 'DO copied');
  t.deepEqual(sent.options, [], 'no COOKIE, no ECS upstream');
  const optA = a.additionals!.find((r) => r.type === 'OPT') as unknown as { udpPayloadSize: number; options: unknown[] };
  t.deepEqual(optA.options, [], "the upstream's cookie is not relayed");
  t.is(optA.udpPayloadSize, 1232);
  // Client B (DO, no options) is served A's cached answer: it carries neither A's nor the upstream's options.
  const b = await ask(port, 'opts.fwd.example', 'A', { additionals: [{ name: '.', type: 'OPT', udpPayloadSize: 1232, flags: dnsPacket.DNSSEC_OK } as unknown as dnsPacket.Answer] });
  t.is(up.received.length, 1, 'served from the cache');
  t.deepEqual(ips(b), ['127.77.0.1']);
  t.deepEqual((b.additionals!.find((r) => r.type === 'OPT') as unknown as { options: unknown[] }).options, []);
  // Client C without EDNS gets no OPT at all.
  const c = await ask(port, 'opts.fwd.example');
  t.deepEqual(ips(c), ['127.77.0.1']);
  t.is((c.additionals ?? []).length, 0);
});

test('the forward cache keys on the raw type and on CD: TYPE97 is not the cached HTTPS (TYPE65) answer, CD=1 is not served to CD=0', async (t) => {
  const up = await faultUpstream(t, (q) => {
    const { name, type } = q.packet.questions![0]!;
    const cd = (q.packet.flags! & dnsPacket.CHECKING_DISABLED) !== 0;
    const data = type === 'A' ? (cd ? '127.77.0.9' : '127.77.0.8') : Buffer.from(String(type));
    return { bytes: answer(q, { answers: [{ name, type, ttl: 300, data } as dnsPacket.Answer] }) };
  });
  const { port } = await serve(t, [up]);
  const raw = (p: dnsPacket.Packet) => String(p.answers![0]!.data);
  t.is(raw(await ask(port, 'types.fwd.example', 'UNKNOWN_65' as dnsPacket.RecordType)), 'UNKNOWN_65');
  t.is(raw(await ask(port, 'types.fwd.example', 'UNKNOWN_97' as dnsPacket.RecordType)), 'UNKNOWN_97');
  t.deepEqual(ips(await ask(port, 'cd.fwd.example', 'A', { flags: dnsPacket.RECURSION_DESIRED | dnsPacket.CHECKING_DISABLED })), ['127.77.0.9']);
  const plain = await ask(port, 'cd.fwd.example', 'A');
  t.deepEqual(ips(plain), ['127.77.0.8'], 'a CD=0 asker is not given the unchecked answer');
  t.is(plain.flags! & dnsPacket.CHECKING_DISABLED, 0);
  t.is(up.received.length, 4);
});

test('records not on the CNAME chain, and authority and glue outside the zone, are scrubbed before relaying and caching', async (t) => {
  const up = await faultUpstream(t, (q) => ({
    bytes: q.packet.questions![0]!.name !== 'alias.fwd.example' ? answer(q, {}) : answer(q, {
      answers: [
        { name: 'alias.fwd.example', type: 'CNAME', ttl: 300, data: 'target.fwd.example' },
        { name: 'target.fwd.example', type: 'A', ttl: 300, data: '127.77.0.5' },
        { name: 'www.bank.example', type: 'A', ttl: 300, data: '6.6.6.6' },
      ],
      authorities: [
        { name: 'fwd.example', type: 'NS', ttl: 300, data: 'ns.fwd.example' },
        { name: 'bank.example', type: 'NS', ttl: 300, data: 'ns.evil.example' },
      ],
      additionals: [
        { name: 'ns.fwd.example', type: 'A', ttl: 300, data: '127.77.0.53' },
        { name: 'ns.evil.example', type: 'A', ttl: 300, data: '6.6.6.6' },
        { name: 'www.bank.example', type: 'A', ttl: 300, data: '6.6.6.6' },
      ],
    }),
  }));
  const { port } = await serve(t, [up]);
  for (const round of ['relayed', 'cached']) {
    const r = await ask(port, 'alias.fwd.example');
    t.deepEqual((r.answers ?? []).map((a) => `${a.name} ${a.type} ${String(a.data)}`), ['alias.fwd.example CNAME target.fwd.example', 'target.fwd.example A 127.77.0.5'], round);
    t.deepEqual((r.authorities ?? []).map((a) => a.name), ['fwd.example'], round);
    t.deepEqual((r.additionals ?? []).map((a) => `${a.name} ${String(a.data)}`), ['ns.fwd.example 127.77.0.53'], round);
  }
  t.is(up.received.length, 1);
  t.false(JSON.stringify(await ask(port, 'www.bank.example')).includes('6.6.6.6'), 'the poison was never cached for its own name');
  t.is(up.received.length, 2, 'www.bank.example was asked upstream, not answered from what alias.fwd.example brought');
});

test('upstream sockets are connected to their upstream and bound to the address that reaches it (127.0.0.1), not 0.0.0.0', async (t) => {
  const up = await faultUpstream(t, ok);
  const { port } = await serve(t, [up]);
  await ask(port, 'sock.fwd.example');
  const { stdout } = await run('ss', ['-Hunap', 'dst', `127.0.0.1:${up.port}`]);
  const mine = stdout.split('\n').filter((l) => l.includes(`pid=${process.pid},`));
  t.true(mine.length >= 1, stdout);
  for (const line of mine) {
    t.regex(line, /^ESTAB/, 'connected');
    t.regex(line, new RegExp(`127\\.0\\.0\\.1:\\d+\\s+127\\.0\\.0\\.1:${up.port}`), line);
  }
});

/** Replies the matrix upstream can give; `poison` marks replies that must never reach an asker. */
const FAULTS: Record<string, Handler> = {
  silent: () => null,
  'slow 1.5 s': (q) => ({ bytes: answer(q, { answers: [aFor(q, '127.77.0.1')] }), delayMs: 1500 }),
  'slow 3 s': (q) => ({ bytes: answer(q, { answers: [aFor(q, '127.77.0.1')] }), delayMs: 3000 }),
  servfail: (q) => ({ bytes: answer(q, {}, 2) }),
  refused: (q) => ({ bytes: answer(q, {}, 5) }),
  'tc, then tcp': (q) => (q.transport === 'udp' ? { bytes: answer(q, {}, dnsPacket.TRUNCATED_RESPONSE) } : { bytes: answer(q, { answers: [aFor(q, '127.77.0.1')] }) }),
  'tc, tcp reset': (q) => (q.transport === 'udp' ? { bytes: answer(q, {}, dnsPacket.TRUNCATED_RESPONSE) } : { reset: true }),
  'wrong id': (q) => ({ bytes: answer({ ...q, packet: { ...q.packet, id: (q.packet.id! + 1) & 0xffff } }, { answers: [aFor(q, '6.6.6.6')] }) }),
  'wrong source port': (q) => ({ bytes: answer(q, { answers: [aFor(q, '6.6.6.6')] }), fromOtherPort: true }),
  'wrong question': (q) => ({ bytes: answer({ ...q, packet: { ...q.packet, questions: [{ name: 'other.example', type: 'A', class: 'IN' }] } }, { answers: [{ name: 'other.example', type: 'A', ttl: 300, data: '6.6.6.6' }] }) }),
  garbage: (q) => ({ bytes: Buffer.concat([q.raw.subarray(0, 2), Buffer.from([0x81, 0x80]), Buffer.from('6.6.6.6 garbage garbage')]) }),
  truncated: (q) => ({ bytes: answer(q, { answers: [aFor(q, '6.6.6.6')] }).subarray(0, -3) }),
  'extra out-of-zone records': (q) => ({ bytes: answer(q, { answers: [aFor(q, '127.77.0.1'), { name: 'www.bank.example', type: 'A', ttl: 300, data: '6.6.6.6' }] }) }),
};
/** What a lone upstream with that fault gives the asker. */
const ALONE: Record<string, 'NOERROR' | 'SERVFAIL' | 'either'> = {
  // 1.5 s is just inside the 1.6 s budget: on a loaded machine the answer may miss it.
  silent: 'SERVFAIL', 'slow 1.5 s': 'either', 'slow 3 s': 'SERVFAIL', servfail: 'SERVFAIL', refused: 'SERVFAIL', 'tc, then tcp': 'NOERROR',
  'tc, tcp reset': 'SERVFAIL', 'wrong id': 'SERVFAIL', 'wrong source port': 'SERVFAIL', 'wrong question': 'SERVFAIL', garbage: 'SERVFAIL',
  truncated: 'SERVFAIL', 'extra out-of-zone records': 'NOERROR',
};

test('R2 upstream faults: alone and ahead of a healthy upstream, every query is answered within 2 s and nothing spoofed or poisoned is returned or cached', async (t) => {
  const cases = Object.entries(FAULTS).flatMap(([fault, handler]) => [
    { fault, handler, healthy: false },
    { fault, handler, healthy: true },
  ]);
  // In batches: two dozen servers starting at once in this one process would time the test, not tsnet.
  const results = [];
  // Time this process spent stalled (other test files starving the CPU) is no delay of tsnet's:
  // it is measured and allowed on top of the 2 s.
  const lag = monitorEventLoopDelay({ resolution: 10 });
  lag.enable();
  for (let i = 0; i < cases.length; i += 7) {
    results.push(...(await Promise.all(cases.slice(i, i + 7).map(async ({ fault, handler, healthy }) => {
      const bad = await faultUpstream(t, handler);
      const upstreams = healthy ? [bad, await faultUpstream(t, ok)] : [bad];
      const { port } = await serve(t, upstreams);
      const started = performance.now();
      const first = await ask(port, 'matrix.fwd.example');
      const ms = performance.now() - started;
      const again = await ask(port, 'matrix.fwd.example');
      return { fault, healthy, ms, first, again };
    }))));
  }
  lag.disable();
  const stalledMs = lag.max / 1e6;
  t.log(`event loop stalled up to ${stalledMs.toFixed(0)} ms`);
  for (const { fault, healthy, ms, first, again } of results) {
    const label = `${fault}${healthy ? ', then healthy' : ', alone'}`;
    t.true(ms < 2000 + stalledMs, `${label}: answered in ${ms.toFixed(0)} ms (stalls up to ${stalledMs.toFixed(0)} ms)`);
    for (const r of [first, again]) t.false(JSON.stringify(r.answers ?? []).includes('6.6.6.6'), `${label}: poison returned`);
    const expected = healthy ? 'NOERROR' : ALONE[fault]!;
    if (expected === 'either') t.true(['NOERROR', 'SERVFAIL'].includes(first.rcode!), label);
    else t.is(first.rcode, expected, label);
    if (first.rcode === 'NOERROR') t.true(ips(first).length === 1, `${label}: one address`);
  }
});

test('a TCP-only path: a query over TCP to tsnet is forwarded over UDP and answered over TCP', async (t) => {
  const up = await faultUpstream(t, ok);
  const { port } = await serve(t, [up]);
  const [reply] = await tcpAsk(port, [query('tcp.fwd.example')]);
  t.deepEqual(ips(decode(reply!)), ['127.77.0.2']);
  t.is((up.received as Received[])[0]!.transport, 'udp');
});
