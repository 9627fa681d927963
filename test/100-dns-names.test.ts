import test from 'ava';
import { Resolver } from 'node:dns/promises';
import { datas, dig, kdig } from './helpers/dig.js';
import { startDns } from './helpers/tsnet-dns.js';
import { id, records } from './fixtures.js';

const NO_FORWARD = ['--resolvers', 'local,services,ptr'];

test('container name, alias, hostname, short id and name.network resolve to the container, any case, with or without the dot', async (t) => {
  const dns = await startDns(t, records(), NO_FORWARD);
  for (const name of ['web', 'www', 'webhost', id('a').slice(0, 12), 'web.app', 'WeB.ApP.', 'WWW.']) {
    const r = await dig(dns.port, name, 'A');
    t.is(r.status, 'NOERROR', name);
    t.deepEqual(datas(r), ['172.30.0.2'], name);
  }
  t.deepEqual(datas(await dig(dns.port, 'web', 'AAAA')), ['fd00:30::2']);
});

test('the reply echoes the asker\'s letter case in the question (0x20)', async (t) => {
  const dns = await startDns(t, records(), NO_FORWARD);
  const r = await dig(dns.port, 'wEb.aPp', 'A');
  t.regex(r.raw, /;wEb\.aPp\.\s+IN\s+A/);
  t.deepEqual(datas(r), ['172.30.0.2']);
});

test('a name shared by two containers returns both addresses', async (t) => {
  const dns = await startDns(t, records(), NO_FORWARD);
  t.deepEqual(datas(await dig(dns.port, 'shared', 'A')), ['172.30.0.2', '172.30.0.3']);
});

test('local answers are authoritative, with RA set, RD echoed and the default 5 s TTL', async (t) => {
  const dns = await startDns(t, records(), NO_FORWARD);
  const rd = await dig(dns.port, 'web', 'A');
  t.true(rd.flags.includes('aa'));
  t.true(rd.flags.includes('ra'));
  t.true(rd.flags.includes('rd'));
  t.is(rd.answers[0]?.ttl, 5);
  const norec = await dig(dns.port, '+norec', 'web', 'A');
  t.false(norec.flags.includes('rd'));
  t.true(norec.flags.includes('aa'));
});

test('--ttl sets the TTL of local answers', async (t) => {
  const dns = await startDns(t, records(), [...NO_FORWARD, '--ttl', '42']);
  t.is((await dig(dns.port, 'web', 'A')).answers[0]?.ttl, 42);
});

test('a known name without the asked type is NOERROR with no answer (NODATA), never NXDOMAIN', async (t) => {
  const up = await startDns(t, records());
  for (const [name, type] of [['web2', 'AAAA'], ['web', 'MX'], ['web', 'TXT'], ['api', 'SRV'], ['_http._tcp.api', 'A']] as const) {
    const r = await dig(up.port, name, type);
    t.is(r.status, 'NOERROR', `${name} ${type}`);
    t.is(r.answers.length, 0, `${name} ${type}`);
  }
});

test('ANY for a local name answers its A and AAAA records', async (t) => {
  const dns = await startDns(t, records(), NO_FORWARD);
  const r = await dig(dns.port, 'web', 'ANY');
  t.deepEqual(r.answers.map((a) => `${a.type} ${a.data}`).sort(), ['A 172.30.0.2', 'AAAA fd00:30::2']);
});

test('a VIP service answers its VIP; tasks.<svc> answers every healthy task', async (t) => {
  const dns = await startDns(t, records(), NO_FORWARD);
  t.deepEqual(datas(await dig(dns.port, 'api', 'A')), ['172.30.0.100']);
  t.deepEqual(datas(await dig(dns.port, 'api.app', 'A')), ['172.30.0.100']);
  t.deepEqual(datas(await dig(dns.port, 'tasks.api', 'A')), ['172.30.0.11', '172.30.0.12']);
});

test('a dnsrr service answers every healthy, non-draining task, shuffled across replies', async (t) => {
  const dns = await startDns(t, records(), NO_FORWARD);
  const orders = new Set<string>();
  for (let i = 0; i < 30; i++) {
    const r = await dig(dns.port, 'cache', 'A');
    t.deepEqual(datas(r), ['172.30.0.21', '172.30.0.22', '172.30.0.23']);
    orders.add(r.answers.map((a) => a.data).join(','));
  }
  t.true(orders.size > 1, `30 replies came in ${orders.size} order(s)`);
});

test('SRV _port._proto.svc answers the port with the target and its address as glue', async (t) => {
  const dns = await startDns(t, records(), NO_FORWARD);
  const vip = await dig(dns.port, '_http._tcp.api', 'SRV');
  t.deepEqual(datas(vip), ['0 1 80 api.app.']);
  t.regex(vip.raw, /api\.app\.\s+5\s+IN\s+A\s+172\.30\.0\.100/);
  const rr = await dig(dns.port, '_redis._tcp.cache', 'SRV');
  t.is(rr.answers.length, 3);
  t.true(rr.answers.every((a) => /^0 1 6379 cache\.[0-9a-f]{12}\.app\.$/.test(a.data)));
});

test('PTR of a container, task and VIP address answers name.network', async (t) => {
  const dns = await startDns(t, records(), NO_FORWARD);
  t.deepEqual(datas(await dig(dns.port, '-x', '172.30.0.2')), ['web.app.']);
  t.deepEqual(datas(await dig(dns.port, '-x', 'fd00:30::2')), ['web.app.']);
  t.deepEqual(datas(await dig(dns.port, '-x', '172.30.0.100')), ['api.app.']);
  t.deepEqual(datas(await dig(dns.port, '-x', '172.30.0.11')), [`api.${id('1').slice(0, 12)}.app.`]);
  t.is((await dig(dns.port, '-x', '172.30.0.13')).status, 'REFUSED', 'an unhealthy task has no local PTR');
});

test('a query from an endpoint\'s address sees only that endpoint\'s networks', async (t) => {
  const dns = await startDns(t, records(), NO_FORWARD);
  t.deepEqual(datas(await dig(dns.port, '-b', '127.0.10.2', 'asker-a')), ['127.0.10.2']);
  t.is((await dig(dns.port, '-b', '127.0.10.2', 'asker-b')).status, 'REFUSED', 'lo-b is not visible from lo-a');
  t.is((await dig(dns.port, '-b', '127.0.10.2', 'web')).status, 'REFUSED', 'app is not visible from lo-a');
  t.deepEqual(datas(await dig(dns.port, '-b', '127.0.10.3', 'asker-b')), ['127.0.20.2'], 'an endpoint on both sees both');
  t.deepEqual(datas(await dig(dns.port, '-b', '127.0.10.3', 'asker-a')), ['127.0.10.2']);
});

test('--scope limits what askers that are no endpoint can see', async (t) => {
  const dns = await startDns(t, records(), [...NO_FORWARD, '--scope', 'db']);
  t.deepEqual(datas(await dig(dns.port, 'pg')), ['172.31.0.2']);
  t.is((await dig(dns.port, 'web')).status, 'REFUSED');
});

test('kdig and Node\'s resolver get the same local answers', async (t) => {
  const dns = await startDns(t, records(), NO_FORWARD);
  const k = await kdig(dns.port, 'www', 'A');
  t.is(k.status, 'NOERROR');
  t.deepEqual(k.answers.map((a) => a.data), ['172.30.0.2']);
  const resolver = new Resolver({ timeout: 2000, tries: 1 });
  resolver.setServers([`127.0.0.1:${dns.port}`]);
  t.deepEqual(await resolver.resolve4('web.app'), ['172.30.0.2']);
  t.deepEqual((await resolver.resolve4('tasks.api')).sort(), ['172.30.0.11', '172.30.0.12']);
  t.deepEqual(await resolver.resolveSrv('_http._tcp.api'), [{ name: 'api.app', port: 80, priority: 0, weight: 1 }]);
  t.deepEqual(await resolver.reverse('172.31.0.2'), ['postgres.db']);
});
