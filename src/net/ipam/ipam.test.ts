import test from 'ava';
import { Cidr, fromBigInt, toBigInt } from './cidr.js';
import { allocateAddress, planSubnet } from './ipam.js';

test('a network without --subnet gets the first default pool free of the others, gateway .1', (t) => {
  t.deepEqual(planSubnet('a', {}, []), { network: 'a', subnet: '172.17.0.0/16', gateway: '172.17.0.1' });
  const existing = [{ network: 'bridge', subnet: '172.17.0.0/16' }, { network: 'x', subnet: '172.18.5.0/24' }];
  t.is(planSubnet('b', {}, existing).subnet, '172.19.0.0/16');
  const all172 = Array.from({ length: 15 }, (_, i) => ({ network: `n${i}`, subnet: `172.${17 + i}.0.0/16` }));
  t.is(planSubnet('c', {}, all172).subnet, '192.168.0.0/20');
});

test('overlapping, malformed and misplaced subnets, gateways and ranges are refused with the clash named', (t) => {
  const existing = [{ network: 'app', subnet: '172.30.0.0/16' }];
  t.throws(() => planSubnet('b', { subnet: '172.30.1.0/24' }, existing), { message: 'subnet 172.30.1.0/24 overlaps network app (172.30.0.0/16)' });
  t.throws(() => planSubnet('b', { subnet: '10.0.0.1/24' }, existing), { message: /has host bits set \(did you mean 10\.0\.0\.0\/24\?\)/ });
  t.throws(() => planSubnet('b', { subnet: '10.0.0.0/33' }, existing), { message: /is not a subnet in CIDR form/ });
  t.throws(() => planSubnet('b', { subnet: '10.0.0.0/24', gateway: '10.0.1.1' }, existing), { message: 'gateway 10.0.1.1 is outside subnet 10.0.0.0/24' });
  t.throws(() => planSubnet('b', { subnet: '10.0.0.0/24', ipRange: '10.0.1.0/28' }, existing), { message: 'ip-range 10.0.1.0/28 is outside subnet 10.0.0.0/24' });
  t.throws(() => planSubnet('b', { subnet: '10.0.0.0/24', gateway: '10.0.0.0' }, existing), { message: 'gateway 10.0.0.0 is the network address of 10.0.0.0/24' });
  t.throws(() => planSubnet('b', { subnet: '10.0.0.0/24', gateway: '10.0.0.255' }, existing), { message: 'gateway 10.0.0.255 is the broadcast address of 10.0.0.0/24' });
});

test('loopback, link-local, multicast and reserved subnets, and ones the host uses, are refused; pools skip what the host uses', (t) => {
  for (const [subnet, range] of [['127.0.0.0/8', 'loopback'], ['127.5.0.0/16', 'loopback'], ['169.254.0.0/24', 'link-local'], ['224.1.0.0/16', 'multicast'], ['240.0.0.0/8', 'reserved'], ['0.0.0.0/0', '"this network"'], ['fe80::/64', 'link-local'], ['ff02::/16', 'multicast'], ['::1/128', 'unspecified or loopback']]) {
    t.throws(() => planSubnet('b', { subnet }, []), { message: new RegExp(`is in the ${range} range`) }, subnet);
  }
  const host = [{ subnet: '192.0.2.0/24', dev: 'eth0' }, { subnet: '172.17.0.0/16', dev: 'docker0' }];
  t.throws(() => planSubnet('b', { subnet: '192.0.2.128/25' }, [], { host }), { message: "subnet 192.0.2.128/25 overlaps the host's eth0 (192.0.2.0/24)" });
  t.is(planSubnet('b', {}, [], { host }).subnet, '172.18.0.0/16');
});

test('addresses: lowest free, skipping network, gateway and broadcast; released ones are reused', (t) => {
  const space = { network: 'app', subnet: '10.5.0.0/29', gateway: '10.5.0.1' };
  const used = new Set<string>();
  const got: string[] = [];
  for (let i = 0; i < 5; i++) {
    const a = allocateAddress(space, used);
    used.add(a);
    got.push(a);
  }
  t.deepEqual(got, ['10.5.0.2', '10.5.0.3', '10.5.0.4', '10.5.0.5', '10.5.0.6']);
  t.throws(() => allocateAddress(space, used), { message: 'no free address left on app (10.5.0.0/29)' });
  used.delete('10.5.0.4');
  t.is(allocateAddress(space, used), '10.5.0.4');
});

test('a requested address must be inside, free and not reserved; --ip-range limits automatic ones', (t) => {
  const space = { network: 'app', subnet: '10.5.0.0/24', gateway: '10.5.0.1', ipRange: '10.5.0.128/25' };
  t.is(allocateAddress(space, new Set()), '10.5.0.128');
  t.is(allocateAddress(space, new Set(), '10.5.0.9'), '10.5.0.9');
  t.throws(() => allocateAddress(space, new Set(), '10.6.0.9'), { message: "address 10.6.0.9 is outside app's subnet 10.5.0.0/24" });
  t.throws(() => allocateAddress(space, new Set(['10.5.0.9']), '10.5.0.9'), { message: 'address 10.5.0.9 is already in use on app' });
  t.throws(() => allocateAddress(space, new Set(), '10.5.0.1'), { message: /reserved/ });
});

test('IPv6 subnets allocate from ::2 and print in RFC 5952 form', (t) => {
  const space = planSubnet('v6', { subnet: 'fd00:30::/64' }, []);
  t.is(space.gateway, 'fd00:30::1');
  t.is(allocateAddress(space, new Set(['fd00:30::2'])), 'fd00:30::3');
  t.is(fromBigInt(toBigInt('fd00:0:0:1::'), 6), 'fd00:0:0:1::');
  t.is(Cidr.parse('fd00::1/64').toString(), 'fd00::/64');
});

test('IPv6 addresses in use count however they are spelled, and those outside the range or of IPv4 do not', (t) => {
  const space = planSubnet('v6', { subnet: 'fd00:31::/64' }, []);
  const inUse = new Set(['FD00:31:0:0::2', 'fd00:31::0003', '10.0.0.4', 'fd00:32::4', 'fd00:31::5']);
  t.is(allocateAddress(space, inUse), 'fd00:31::4');
  inUse.add('fd00:31::4');
  t.is(allocateAddress(space, inUse), 'fd00:31::6');
});
