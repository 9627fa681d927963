import test, { type ExecutionContext } from 'ava';
import { dig } from './helpers/dig.js';
import { startDns } from './helpers/tsnet-dns.js';
import { startUpstream } from './helpers/upstream.js';
import { records } from './fixtures.js';

const upstreamArgs = (...labels: string[]): string[] => labels.flatMap((l) => ['--upstream', l]);

/** The names of `racers` in the order they settled. Timing is judged against upstreams with configured delays, never a clock. */
async function settleOrder(racers: Record<string, Promise<unknown>>): Promise<string[]> {
  const order: string[] = [];
  await Promise.allSettled(Object.entries(racers).map(([name, p]) => p.finally(() => order.push(name))));
  return order;
}

/** A reference: asking an upstream that answers after `ms` directly, past tsnet. */
async function reference(t: ExecutionContext, ms: number): Promise<() => Promise<unknown>> {
  const clock = await startUpstream(t, { delayMs: ms });
  return () => dig(clock.port, 'clock.example');
}

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 300 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
  if (!check()) throw new Error('condition not met within 3 s');
}

test.serial('unknown names go to the upstream; its answer and TTL are relayed, not authoritative', async (t) => {
  const up = await startUpstream(t, { ttl: 123 });
  const dns = await startDns(t, records(), upstreamArgs(up.label));
  const r = await dig(dns.port, 'host.fwd.example', 'A');
  t.is(r.status, 'NOERROR');
  t.deepEqual(r.answers.map((a) => [a.data, a.ttl]), [['127.77.0.1', 123]]);
  t.false(r.flags.includes('aa'));
  t.true(r.flags.includes('ra'));
  t.is(up.udpQueries, 1);
});

test.serial('local names are never forwarded', async (t) => {
  const up = await startUpstream(t);
  const dns = await startDns(t, records(), upstreamArgs(up.label));
  for (const q of [['web', 'A'], ['web2', 'AAAA'], ['web', 'MX'], ['tasks.api', 'A']]) await dig(dns.port, ...q);
  t.is(up.udpQueries, 0);
  await dig(dns.port, 'elsewhere.fwd.example');
  t.is(up.udpQueries, 1, 'control: a name that is not local does reach this upstream');
});

test.serial('a forwarded answer is cached: asked again it does not reach the upstream and its TTL counts down', async (t) => {
  const up = await startUpstream(t, { ttl: 300 });
  const dns = await startDns(t, records(), upstreamArgs(up.label));
  const started = Date.now();
  await dig(dns.port, 'cached.fwd.example');
  // Asked again until the TTL has counted down by two; each ask is a cache hit.
  let again = await dig(dns.port, 'CACHED.fwd.example');
  for (let i = 0; i < 60 && (again.answers[0]?.ttl ?? 0) > 298; i++) {
    await new Promise((r) => setTimeout(r, 100));
    again = await dig(dns.port, 'CACHED.fwd.example');
  }
  const elapsed = Math.ceil((Date.now() - started) / 1000);
  t.is(up.udpQueries, 1);
  t.deepEqual(again.answers.map((a) => a.data), ['127.77.0.1']);
  const ttl = again.answers[0]!.ttl;
  t.true(ttl <= 298 && ttl >= 300 - elapsed - 1, `ttl ${ttl} after at most ${elapsed} s`);
  t.regex(again.raw, /;CACHED\.fwd\.example\.\s+IN\s+A/, 'the question keeps the asker\'s case');
});

test.serial('NXDOMAIN with an SOA is cached for min(SOA TTL, SOA minimum) (RFC 2308)', async (t) => {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const dns = await startDns(t, records(), upstreamArgs(up.label));
  const first = await dig(dns.port, 'nope.fwd.example');
  t.is(first.status, 'NXDOMAIN');
  const second = await dig(dns.port, 'nope.fwd.example');
  t.is(second.status, 'NXDOMAIN');
  t.is(up.udpQueries, 1);
});

test.serial('a silent first upstream fails over to the second within a second', async (t) => {
  const silent = await startUpstream(t, { behaviour: 'silent' });
  const good = await startUpstream(t);
  const dns = await startDns(t, records(), upstreamArgs(silent.label, good.label));
  const slower = await reference(t, 1500);
  const r = dig(dns.port, 'failover.fwd.example');
  t.deepEqual(await settleOrder({ tsnet: r, reference: slower() }), ['tsnet', 'reference'], 'answered before an upstream delayed 1.5 s');
  t.is((await r).status, 'NOERROR');
  t.is(silent.udpQueries, 1);
  t.is(good.udpQueries, 1);
});

for (const behaviour of ['servfail', 'refused'] as const) {
  test.serial(`an upstream answering ${behaviour.toUpperCase()} fails over to the next at once`, async (t) => {
    const bad = await startUpstream(t, { behaviour });
    const good = await startUpstream(t);
    const dns = await startDns(t, records(), upstreamArgs(bad.label, good.label));
    // Without a failover at once the second would be asked only at the hedge, 950 ms in.
    const slower = await reference(t, 500);
    const r = dig(dns.port, `${behaviour}.fwd.example`);
    t.deepEqual(await settleOrder({ tsnet: r, reference: slower() }), ['tsnet', 'reference'], 'answered before an upstream delayed 0.5 s');
    t.is((await r).status, 'NOERROR');
    t.deepEqual([bad.udpQueries, good.udpQueries], [1, 1]);
  });
}

test.serial('when every upstream is silent the query gets SERVFAIL within 2 s', async (t) => {
  const a = await startUpstream(t, { behaviour: 'silent' });
  const b = await startUpstream(t, { behaviour: 'silent' });
  const c = await startUpstream(t, { behaviour: 'silent' });
  const dns = await startDns(t, records(), upstreamArgs(a.label, b.label, c.label));
  const slower = await reference(t, 2200);
  const r = dig(dns.port, 'void.fwd.example');
  t.deepEqual(await settleOrder({ tsnet: r, reference: slower() }), ['tsnet', 'reference'], 'SERVFAIL before an upstream delayed 2.2 s answered');
  t.is((await r).status, 'SERVFAIL');
  t.is(a.udpQueries + b.udpQueries + c.udpQueries, 3, 'all three were tried');
});

for (const behaviour of ['wrong-id', 'wrong-port', 'wrong-question'] as const) {
  test.serial(`a reply with the ${behaviour.replace('wrong-', 'wrong ')} is dropped, never relayed`, async (t) => {
    const liar = await startUpstream(t, { behaviour });
    const dns = await startDns(t, records(), upstreamArgs(liar.label));
    const r = await dig(dns.port, 'spoof.fwd.example');
    t.is(r.status, 'SERVFAIL');
    t.is(r.answers.length, 0);
  });
}

test.serial('a truncated upstream reply is fetched again over TCP; the client gets TC over UDP and the whole answer over TCP', async (t) => {
  const up = await startUpstream(t, { behaviour: 'truncate' });
  const dns = await startDns(t, records(), upstreamArgs(up.label));
  const udp = await dig(dns.port, '+ignore', 'big.fwd.example');
  t.true(udp.flags.includes('tc'));
  t.is(up.tcpQueries, 1);
  const tcp = await dig(dns.port, '+tcp', 'big.fwd.example');
  t.is(tcp.answers.length, 60);
  t.is(up.tcpQueries, 1, 'the second answer came from the cache');
});

test.serial('--max-inflight: excess forwarded queries get SERVFAIL at once while local names answer without delay', async (t) => {
  // Its answers come 1.5 s after each query (inside the 1.9 s deadline): everything else must come first.
  const slow = await startUpstream(t, { delayMs: 1500 });
  const dns = await startDns(t, records(), [...upstreamArgs(slow.label), '--max-inflight', '2']);
  const done: string[] = [];
  const forwarded = Array.from({ length: 6 }, (_, i) => dig(dns.port, `slow${i}.fwd.example`).then((r) => done.push(r.status)));
  await until(() => slow.udpQueries === 2);
  const local = await dig(dns.port, 'web');
  done.push('local');
  t.is(local.status, 'NOERROR');
  await Promise.all(forwarded);
  t.is(slow.udpQueries, 2, 'only two were let through');
  t.deepEqual([...done.slice(0, 5)].sort(), ['SERVFAIL', 'SERVFAIL', 'SERVFAIL', 'SERVFAIL', 'local'], `order: ${done.join()}`);
  t.deepEqual(done.slice(5), ['NOERROR', 'NOERROR'], 'the excess and the local name were answered before the slow upstream answered');
});

test.serial('--replay-size 0: every local answer runs the resolver chain, none is replayed, and each is the same answer', async (t) => {
  const up = await startUpstream(t);
  const dns = await startDns(t, records(), ['--upstream', up.label, '--metrics', '127.0.0.1:0', '--replay-size', '0']);
  const answers = [];
  for (let i = 0; i < 3; i++) answers.push((await dig(dns.port, 'web')).answers);
  t.deepEqual(answers[1], answers[0]);
  t.deepEqual(answers[2], answers[0]);
  const ready = dns.logs.find((l) => l.msg === 'ready')!;
  const text = await (await fetch(`http://${ready.metrics as string}/metrics`)).text();
  t.regex(text, /tsnet_dns_queries_total\{type="A",rcode="NOERROR",resolver="local"\} 3/);
  t.notRegex(text, /resolver="replay"/);
});

test.serial('metrics: queries by type, rcode and resolver, cache hits and upstream failures in Prometheus text', async (t) => {
  const up = await startUpstream(t);
  const dead = await startUpstream(t, { behaviour: 'refused' });
  const dns = await startDns(t, records(), [...upstreamArgs(dead.label, up.label), '--metrics', '127.0.0.1:0']);
  await dig(dns.port, 'web');
  await dig(dns.port, 'web');
  await dig(dns.port, 'm.fwd.example');
  await dig(dns.port, 'm.fwd.example');
  const ready = dns.logs.find((l) => l.msg === 'ready')!;
  const text = await (await fetch(`http://${ready.metrics as string}/metrics`)).text();
  t.regex(text, /tsnet_dns_queries_total\{type="A",rcode="NOERROR",resolver="local"\} 1/);
  t.regex(text, /tsnet_dns_queries_total\{type="A",rcode="NOERROR",resolver="replay"\} 1/);
  t.regex(text, /tsnet_dns_queries_total\{type="A",rcode="NOERROR",resolver="cache"\} 1/);
  t.regex(text, /tsnet_dns_cache_total\{result="hit"\} 1/);
  t.regex(text, new RegExp(`tsnet_dns_upstream_failures_total\\{upstream="${dead.label}",reason="refused"\\} 1`));
  t.regex(text, /tsnet_dns_request_duration_seconds_count 4/);
  t.regex(text, /process_resident_memory_bytes/);
});
