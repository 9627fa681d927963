import test from 'ava';
import { backends } from '../../test/helpers/cluster-stores.js';
import { Cidr } from '../net/ipam/cidr.js';
import { claimAddress, claimSubnet, releaseAddress, releaseSubnet, type ClaimCommit } from './ipam-claims.js';
import { addressKey, networkNameKey } from './keys.js';

const percentile = (sorted: number[], p: number): string => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!.toFixed(2);

for (const { name, open } of backends) {
  test(`${name}: subnets come from the default pools in order, skipping the host's, existing and claimed ones`, async (t) => {
    const [store] = await open(t);
    const host = [{ subnet: '172.17.0.0/16', dev: 'docker0' }];
    const a = await claimSubnet(store!, { network: 'net-a', request: {}, host });
    t.deepEqual(a.space, { network: 'net-a', subnet: '172.18.0.0/16', gateway: '172.18.0.1' });
    const b = await claimSubnet(store!, { network: 'net-b', request: {}, host, existing: [{ network: 'local', subnet: '172.19.3.0/24' }] });
    t.is(b.space.subnet, '172.20.0.0/16');
    t.deepEqual((await store!.get(addressKey('net-b', '172.20.0.1')))?.value, { holder: 'gateway' });
  });

  test(`${name}: a given subnet held by another network is refused naming the holder; an overlapping one naming the clash`, async (t) => {
    const [store] = await open(t);
    await claimSubnet(store!, { network: 'net-a', request: { subnet: '10.40.0.0/16' } });
    await t.throwsAsync(claimSubnet(store!, { network: 'net-b', request: { subnet: '10.40.0.0/16' } }), { message: 'cluster/ipam: subnet 10.40.0.0/16 is held by network net-a' });
    await t.throwsAsync(claimSubnet(store!, { network: 'net-b', request: { subnet: '10.40.7.0/24' } }), {
      message: 'cluster/ipam: network net-b: subnet 10.40.7.0/24 overlaps network net-a (10.40.0.0/16)',
    });
    const both = await claimSubnet(store!, { network: 'net-c', request: { subnet: '10.41.0.0/24' }, request6: { subnet: 'fd00:41::/64' } });
    t.is(both.space6?.gateway, 'fd00:41::1');
    await t.throwsAsync(claimSubnet(store!, { network: 'net-d', request: {}, request6: { subnet: 'fd00:41::/64' } }), { message: /held by network net-c/ });
  });

  test(`${name}: racing claims never share or overlap a subnet, auto and given alike`, async (t) => {
    const stores = await open(t, 4);
    const auto = stores.map((s, i) => claimSubnet(s, { network: `auto-${i}`, request: {} }));
    // Inside the first pool block, which one of the automatic claims is about to take.
    const given = claimSubnet(stores[0]!, { network: 'given', request: { subnet: '172.17.5.0/24' } }).catch((err: Error) => err);
    const spaces = [...(await Promise.all(auto)).map((p) => p.space.subnet)];
    const g = await given;
    if (!(g instanceof Error)) spaces.push(g.space.subnet);
    const cidrs = spaces.map((s) => Cidr.parse(s));
    for (const [i, x] of cidrs.entries()) for (const y of cidrs.slice(i + 1)) t.false(x.overlaps(y), `${x.toString()} overlaps ${y.toString()}`);
    t.log(`${spaces.join(', ')}; given: ${g instanceof Error ? g.message : 'claimed'}`);
  });

  test(`${name}: a claim commits in the caller's transaction; a failure on the caller's condition is not retried`, async (t) => {
    const [store] = await open(t);
    const commitWith = (network: string): ClaimCommit => async ({ conditions, operations }) =>
      (await store!.txn([...conditions, { key: networkNameKey('app'), modRevision: 0 }], [...operations, { op: 'put', key: networkNameKey('app'), value: network }])).succeeded;
    const first = await claimSubnet(store!, { network: 'net-a', request: {}, commit: commitWith('net-a') });
    t.is(first.space.subnet, '172.17.0.0/16');
    await t.throwsAsync(claimSubnet(store!, { network: 'net-b', request: {}, commit: commitWith('net-b') }), { message: /failed on a condition of its caller's/ });
    t.is((await store!.get(networkNameKey('app')))?.value, 'net-a');
    t.is((await claimSubnet(store!, { network: 'net-b', request: {} })).space.subnet, '172.18.0.0/16', 'the refused claim left nothing behind');
  });

  test(`${name}: 3 clients claim 50 addresses each at once: no duplicates, all in range, never the gateway`, async (t) => {
    const stores = await open(t, 3);
    const { space } = await claimSubnet(stores[0]!, { network: 'net', request: { subnet: '10.77.0.0/24' } });
    const start = Date.now();
    const got = (
      await Promise.all(stores.map((s, c) => Promise.all(Array.from({ length: 50 }, (_, i) => claimAddress(s, { networkId: 'net', space, holder: `endpoint:${c}-${i}`, node: `n${c}` })))))
    ).flat();
    t.log(`150 concurrent claims in ${Date.now() - start} ms`);
    t.is(new Set(got).size, 150);
    const subnet = Cidr.parse(space.subnet);
    t.true(got.every((ip) => subnet.contains(ip) && ip !== space.gateway && ip !== '10.77.0.0' && ip !== '10.77.0.255'));
    const ms: number[] = [];
    for (let i = 0; i < 100; i++) {
      const t0 = performance.now();
      await claimAddress(stores[0]!, { networkId: 'net', space, holder: `endpoint:seq-${i}` });
      ms.push(performance.now() - t0);
    }
    ms.sort((a, b) => a - b);
    t.log(`sequential claim latency over ${ms.length}: p50 ${percentile(ms, 0.5)} ms, p99 ${percentile(ms, 0.99)} ms`);
  });

  test(`${name}: a requested address is refused naming its holder; release is by holder only, and frees it for reuse`, async (t) => {
    const [store] = await open(t);
    const space = { network: 'net', subnet: 'fd00:77::/64', gateway: 'fd00:77::1' };
    t.is(await claimAddress(store!, { networkId: 'net', space, holder: 'endpoint:a', requested: 'fd00:77:0::9' }), 'fd00:77::9');
    await t.throwsAsync(claimAddress(store!, { networkId: 'net', space, holder: 'endpoint:b', requested: 'fd00:77::9' }), { message: 'cluster/ipam: address fd00:77::9 on net is held by endpoint:a' });
    t.is(await claimAddress(store!, { networkId: 'net', space, holder: 'endpoint:b' }), 'fd00:77::2');
    await t.throwsAsync(releaseAddress(store!, { networkId: 'net', ip: 'fd00:77::9', holder: 'endpoint:b' }), { message: /held by endpoint:a, not released/ });
    t.true(await releaseAddress(store!, { networkId: 'net', ip: 'fd00:77::2', holder: 'endpoint:b' }));
    t.false(await releaseAddress(store!, { networkId: 'net', ip: 'fd00:77::2', holder: 'endpoint:b' }));
    t.is(await claimAddress(store!, { networkId: 'net', space, holder: 'endpoint:c' }), 'fd00:77::2');
    await t.throwsAsync(claimAddress(store!, { networkId: 'net', space, holder: 'x', requested: 'fd00:78::1' }), { message: /cluster\/ipam: address fd00:78::1 is outside/ });
  });

  test(`${name}: a released subnet (and its gateway claim) can be claimed again`, async (t) => {
    const [store] = await open(t);
    const { space } = await claimSubnet(store!, { network: 'net-a', request: {} });
    await t.throwsAsync(releaseSubnet(store!, { ...space, network: 'net-b' }), { message: /held by network net-a, not released/ });
    t.true(await releaseSubnet(store!, space));
    t.is(await store!.get(addressKey('net-a', space.gateway)), undefined);
    t.is((await claimSubnet(store!, { network: 'net-b', request: {} })).space.subnet, space.subnet);
  });
}
