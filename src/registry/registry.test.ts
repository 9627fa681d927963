import test from 'ava';
import fc from 'fast-check';
import { BlockList } from 'node:net';
import { records } from '../../test/fixtures.js';
import { addressKey, inCidr, reverseNameKey } from './address.js';
import { Registry } from './registry.js';
import { parseRecords } from './validate.js';

const bad = (mutate: (d: ReturnType<typeof records>) => void): string => {
  const doc = records();
  mutate(doc);
  try {
    parseRecords(doc);
  } catch (err) {
    return (err as Error).message;
  }
  return 'accepted';
};

test('records errors name the field and the value', (t) => {
  t.is(bad((d) => ((d.endpoints[3]!.networks as Record<string, { ipv4: string }>)['lo-a']!.ipv4 = '300.1.1.1')), 'endpoints[3].networks.lo-a.ipv4: "300.1.1.1" is not an IPv4 address');
  t.is(bad((d) => (d.endpoints[0]!.networks.app!.ipv4 = '10.0.0.5')), 'endpoints[0].networks.app.ipv4: "10.0.0.5" is outside app\'s subnet 172.30.0.0/24');
  t.is(bad((d) => (d.networks[1]!.subnet = '172.31.0.0/33')), 'networks[1].subnet: "172.31.0.0/33" is not an IPv4 subnet in CIDR form');
  t.is(bad((d) => ((d.services[0] as { mode: string }).mode = 'roundrobin')), 'services[0].mode: "roundrobin" is not "vip" or "dnsrr"');
  t.is(bad((d) => (d.endpoints[1]!.id = d.endpoints[0]!.id)), `endpoints[1].id: endpoint id "${'a'.repeat(64)}" appears twice`);
  t.is(bad((d) => (d.endpoints[1]!.networks.app!.ipv4 = '172.30.0.2')), 'endpoints[1].networks.app.ipv4: address on app "172.30.0.2" appears twice');
  t.is(bad((d) => ((d.endpoints[0]!.networks as Record<string, object>).nope = {})), 'endpoints[0].networks: network "nope" is not defined');
  t.is(bad((d) => (d.endpoints[0]!.name = 'has space')), 'endpoints[0].name: "has space" is not a valid name (letters, digits, \'_\', \'.\', \'-\'; up to 63)');
  t.is(bad((d) => (d.services[0]!.tasks[0]!.ipv4 = '172.99.0.1')), 'services[0].tasks[0].ipv4: "172.99.0.1" is outside app\'s subnet 172.30.0.0/24');
  t.is(bad((d) => ((d.services[0] as { vip?: string }).vip = undefined)), 'services[0].vip: a service in "vip" mode needs a vip or vip6');
  t.is(bad((d) => ((d.services[0]!.ports![0] as { port: number }).port = 70000)), 'services[0].ports[0].port: 70000 is not an integer from 1 to 65535');
});

test('a change emits one event and bumps the generation', (t) => {
  const r = Registry.fromRecords(records());
  const events: number[] = [];
  r.on('change', (c) => events.push(c.generation));
  const before = r.generation;
  r.setEndpoint({ id: 'f'.repeat(12), name: 'late', networks: { app: { ipv4: '172.30.0.50' } } });
  t.deepEqual(events, [before + 1]);
  t.deepEqual(r.lookup(r.allScope, 'endpoints', 'late')?.v4.map((a) => a.ip), ['172.30.0.50']);
  r.removeEndpoint('f'.repeat(12));
  t.is(r.lookup(r.allScope, 'endpoints', 'late'), undefined);
});

test('a network in use cannot be removed; the error names its users', (t) => {
  const r = Registry.fromRecords(records());
  t.throws(() => r.removeNetwork('db'), { message: 'registry: network db is in use by postgres' });
});

test('the scope of an endpoint address is its networks', (t) => {
  const r = Registry.fromRecords(records());
  t.deepEqual(r.scopeOf('127.0.20.3')?.networks, ['lo-a', 'lo-b']);
  t.is(r.scopeOf('127.0.20.3'), r.scopeOf('127.0.10.3'), 'one Scope object per network set');
  t.is(r.scopeOf('8.8.8.8'), undefined);
});

test('address keys: IPv6 forms compare equal; reverse names map back', (t) => {
  t.is(addressKey('fd00::2'), addressKey('fd00:0:0:0::2'));
  t.is(addressKey('::ffff:1.2.3.4'), '00000000000000000000ffff01020304');
  t.is(reverseNameKey('4.3.2.1.in-addr.arpa'), '1.2.3.4');
  t.is(reverseNameKey('01.3.2.1.in-addr.arpa'), undefined);
  t.is(reverseNameKey('x.ip6.arpa'), undefined);
});

test('batch: several changes are one reindex and one change event, and a throw inside still applies what was done', (t) => {
  const r = new Registry();
  const events: number[] = [];
  r.on('change', (c) => events.push(c.generation));
  r.batch(() => {
    r.setNetwork({ name: 'app', subnet: '10.9.0.0/24' });
    r.setEndpoint({ id: 'a'.repeat(64), name: 'web', networks: { app: { ipv4: '10.9.0.2' } } });
    r.setService({ name: 'api', network: 'app', mode: 'dnsrr', tasks: [{ id: 't1', ipv4: '10.9.0.2' }] });
  });
  t.is(events.length, 1);
  t.truthy(r.lookup(r.scope(['app']), 'services', 'api'));
  t.throws(() => r.batch(() => {
    r.removeService('app', 'api');
    r.removeService('app', 'api');
  }));
  t.is(events.length, 2);
  t.is(r.lookup(r.scope(['app']), 'services', 'api'), undefined);
});

test('endpoint changes are applied one at a time: a shared alias keeps its other holder, a moved endpoint leaves its old network, PTR and scope follow', (t) => {
  const r = new Registry();
  r.setNetwork({ name: 'a', subnet: '10.1.0.0/24' });
  r.setNetwork({ name: 'b', subnet: '10.2.0.0/24' });
  const ep = (id: string, name: string, networks: Record<string, { ipv4: string; aliases?: string[] }>) => ({ id: id.repeat(12), name, networks });
  r.setEndpoint(ep('1', 'one', { a: { ipv4: '10.1.0.2', aliases: ['db'] } }));
  r.setEndpoint(ep('2', 'two', { a: { ipv4: '10.1.0.3', aliases: ['DB'] } }));
  const ips = (name: string, scope = r.allScope): string[] | undefined => r.lookup(scope, 'endpoints', name)?.v4.map((x) => x.ip);
  t.deepEqual(ips('db'), ['10.1.0.2', '10.1.0.3'], 'an alias two endpoints share answers with both');
  t.deepEqual(ips('db.a'), ['10.1.0.2', '10.1.0.3']);
  r.removeEndpoint('1'.repeat(12));
  t.deepEqual(ips('db'), ['10.1.0.3'], 'removing one holder leaves the other');
  t.is(ips('one'), undefined);
  t.is(r.reverse(r.allScope, addressKey('10.1.0.2')!), undefined, 'its PTR went with it');
  t.is(r.scopeOf('10.1.0.2'), undefined);
  r.setEndpoint(ep('2', 'two', { b: { ipv4: '10.2.0.3' } }));
  t.is(ips('db'), undefined, 'an endpoint that moved network takes its aliases off the old one');
  t.is(ips('two', r.scope(['a'])), undefined);
  t.deepEqual(ips('two', r.scope(['b'])), ['10.2.0.3']);
  t.deepEqual(r.reverse(r.allScope, addressKey('10.2.0.3')!), ['two.b']);
  t.deepEqual(r.scopeOf('10.2.0.3')?.networks, ['b']);
  t.is(r.scopeOf('10.1.0.3'), undefined, 'the old address has no scope left');
  r.setNetwork({ name: 'c', subnet: '10.3.0.0/24' });
  t.deepEqual(ips('two'), ['10.2.0.3'], 'a new network rebuilds nothing away');
});

test('inCidr agrees with node:net BlockList for IPv4 and IPv6 prefixes of every length', (t) => {
  const v4 = fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 })).map((o) => o.join('.'));
  const v6 = fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 }).map((g) => g.map((x) => x.toString(16)).join(':'));
  const check = (family: 'ipv4' | 'ipv6', max: number) =>
    fc.property(family === 'ipv4' ? v4 : v6, family === 'ipv4' ? v4 : v6, fc.integer({ min: 0, max }), fc.boolean(), (base, other, bits, near) => {
      // Half the cases ask about the base itself with its last bits changed, so that both answers come up.
      const addr = near ? base.replace(/[0-9a-f]+$/, (x) => (parseInt(x, family === 'ipv4' ? 10 : 16) ^ 1).toString(family === 'ipv4' ? 10 : 16)) : other;
      const list = new BlockList();
      list.addSubnet(base, bits, family);
      return inCidr(`${base}/${bits}`, addr, family) === list.check(addr, family);
    });
  fc.assert(check('ipv4', 32), { numRuns: 2000 });
  fc.assert(check('ipv6', 128), { numRuns: 2000 });
  t.true(inCidr('fd00:30::/64', 'fd00:30::2', 'ipv6') && !inCidr('fd00:30::/64', 'fd00:31::2', 'ipv6') && inCidr('10.0.0.0/8', '10.255.1.1', 'ipv4') && !inCidr('172.30.0.0/24', '172.30.1.2', 'ipv4'));
});

test('addressKey expands every spelling of an IPv6 address to the same 32 nibbles (compressed, leading zeros, a dotted-quad tail, any case)', (t) => {
  const group = fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffff }));
  fc.assert(
    fc.property(fc.array(group, { minLength: 8, maxLength: 8 }), fc.integer({ min: 0, max: 7 }), fc.integer({ min: 0, max: 8 }), fc.boolean(), fc.boolean(), (g, from, len, quad, upper) => {
      const want = g.map((x) => x.toString(16).padStart(4, '0')).join('');
      let text: string[] = g.map((x) => x.toString(16));
      if (quad) text = [...text.slice(0, 6), [g[6]! >> 8, g[6]! & 255, g[7]! >> 8, g[7]! & 255].join('.')];
      // Compress a run of zero groups (never into the dotted quad) with '::'.
      const end = Math.min(from + len, 6 + (quad ? 0 : 2));
      if (end > from && g.slice(from, end).every((x) => x === 0)) text = [...text.slice(0, from), '', ...text.slice(end)];
      let spelled = text.join(':').replace(/^:(?=[^:])/, '::').replace(/(?<=[^:]):$/, '::');
      if (spelled === '') spelled = '::';
      if (upper) spelled = spelled.toUpperCase();
      return addressKey(spelled) === want;
    }),
    { numRuns: 3000 },
  );
  t.is(addressKey('1.2.3.4'), '1.2.3.4');
  t.is(addressKey('nonsense'), undefined);
});

test('secondary addresses answer after the first of their family, have PTRs, scope their asker and are checked like the first', (t) => {
  const doc = records();
  // A network with several subnets (as podman makes) is given without any, as aardvark's files are.
  delete (doc.networks[0] as { subnet?: string }).subnet;
  delete (doc.networks[0] as { ipv6Subnet?: string }).ipv6Subnet;
  doc.endpoints[1]!.networks.app = { ipv4: '172.30.0.3', secondary: ['172.40.0.3', 'fd00:30::3', 'fd00:40::3'] } as never;
  const r = Registry.fromRecords(doc);
  const web2 = r.lookup(r.allScope, 'endpoints', 'web2')!;
  t.deepEqual(web2.v4.map((a) => a.ip), ['172.30.0.3', '172.40.0.3']);
  t.deepEqual(web2.v6.map((a) => a.ip), ['fd00:30::3', 'fd00:40::3']);
  t.deepEqual(r.reverse(r.allScope, addressKey('172.40.0.3')!), ['web2.app']);
  t.deepEqual(r.reverse(r.allScope, addressKey('fd00:40::3')!), ['web2.app']);
  t.deepEqual(r.scopeOf('172.40.0.3')?.networks, ['app']);
  r.setEndpoint({ ...doc.endpoints[1]!, networks: { app: { ipv4: '172.30.0.3' } } });
  t.is(r.scopeOf('172.40.0.3'), undefined, 'a secondary address that went no longer scopes');
  t.is(r.reverse(r.allScope, addressKey('172.40.0.3')!), undefined);

  t.is(bad((d) => ((d.endpoints[0]!.networks.app as { secondary?: string[] }).secondary = ['172.30.0.9', '172.99.0.1'])), 'endpoints[0].networks.app.secondary[1]: "172.99.0.1" is outside app\'s subnet 172.30.0.0/24');
  t.is(bad((d) => ((d.endpoints[0]!.networks.app as { secondary?: string[] }).secondary = ['172.30.0.3'])), 'endpoints[1].networks.app.ipv4: address on app "172.30.0.3" appears twice', 'web2 has it as its first');
  t.is(bad((d) => ((d.endpoints[0]!.networks.app as { secondary?: unknown[] }).secondary = ['fd00:30::zz'])), 'endpoints[0].networks.app.secondary[0]: "fd00:30::zz" is not an IPv6 address');
});
