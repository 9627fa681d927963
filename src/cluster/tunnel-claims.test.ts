import test from 'ava';
import { backends } from '../../test/helpers/cluster-stores.js';
import { tunnelKey } from './keys.js';
import { claimTunnelAddress } from './tunnel-claims.js';

for (const { name, open } of backends) {
  test(`${name}: each node gets one tunnel address, the same one again, and racing nodes get different ones`, async (t) => {
    const [a, b] = await open(t, 2);
    t.is(await claimTunnelAddress(a!, 'n1'), '100.64.0.1');
    t.is(await claimTunnelAddress(b!, 'n1'), '100.64.0.1', 'kept: found again, from any node');
    const raced = await Promise.all(['n2', 'n3', 'n4', 'n5'].map((n, i) => claimTunnelAddress([a!, b!][i % 2]!, n)));
    t.is(new Set(raced).size, 4);
    t.false(raced.includes('100.64.0.1'));
    t.deepEqual((await a!.get(tunnelKey(raced[0]!)))?.value, { node: 'n2' });
  });

  test(`${name}: a pool runs out with a clear error`, async (t) => {
    const [a] = await open(t, 1);
    t.is(await claimTunnelAddress(a!, 'x1', '10.9.0.0/30'), '10.9.0.1');
    t.is(await claimTunnelAddress(a!, 'x2', '10.9.0.0/30'), '10.9.0.2');
    await t.throwsAsync(claimTunnelAddress(a!, 'x3', '10.9.0.0/30'), { message: 'cluster/tunnels: pool 10.9.0.0/30 is exhausted' });
  });
}
