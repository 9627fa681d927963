import test from 'ava';
import { backends } from '../../test/helpers/cluster-stores.js';
import { nodeKey, taskKey } from './keys.js';
import { joinCluster } from './nodes.js';

for (const { name, open } of backends) {
  test(`${name}: a node joins under a lease; its name is refused to a second daemon while it lives`, async (t) => {
    const [a, b] = await open(t, 2);
    const m = await joinCluster(a!, { name: 'n1', address: '127.0.0.1', leaseTtl: 3 });
    t.teardown(() => m.leave());
    const kv = await a!.get(nodeKey('n1'));
    t.is(kv?.lease, m.lease);
    t.like(kv?.value, { name: 'n1', address: '127.0.0.1' });
    await t.throwsAsync(joinCluster(b!, { name: 'n1', address: '127.0.0.2', leaseTtl: 3 }), {
      message: /^cluster\/nodes: node name n1 is held by a live daemon at 127\.0\.0\.1 \(started /,
    });
    t.is((await a!.get(nodeKey('n1')))?.lease, m.lease, 'the refused join left the key alone');
  });

  test(`${name}: owned keys live under the node's lease and leave with it; claims are CAS creates`, async (t) => {
    const [a, b] = await open(t, 2);
    const m1 = await joinCluster(a!, { name: 'n1', address: '127.0.0.1', leaseTtl: 3 });
    const m2 = await joinCluster(b!, { name: 'n2', address: '127.0.0.2', leaseTtl: 3 });
    t.teardown(() => Promise.all([m1.leave(), m2.leave()]));
    await m1.put('endpoints/net/e1', { id: 'e1' });
    t.true(await m1.create(taskKey('svc', 'slot-1'), { node: 'n1' }));
    t.false(await m2.create(taskKey('svc', 'slot-1'), { node: 'n2' }), 'one winner per slot');
    t.true(await m1.create(taskKey('svc', 'slot-1'), { node: 'n1' }), 'a claim retried by its holder is still its own');
    t.deepEqual(m1.owned().sort(), ['endpoints/net/e1', taskKey('svc', 'slot-1')]);
    t.deepEqual(m2.owned(), []);
    t.is((await a!.get('endpoints/net/e1'))?.lease, m1.lease);
    await m1.delete('endpoints/net/e1');
    t.is(await a!.get('endpoints/net/e1'), undefined);
    await m1.leave();
    t.is(await b!.get(taskKey('svc', 'slot-1')), undefined);
    t.is(await b!.get(nodeKey('n1')), undefined);
    await t.throwsAsync(m1.put('x', 1), { message: 'cluster/nodes: node n1 has left the cluster' });
    t.truthy(await b!.get(nodeKey('n2')));
  });

  test(`${name}: the node record is rewritten under its lease with a field added, then removed`, async (t) => {
    const [a, b] = await open(t, 2);
    const m = await joinCluster(a!, { name: 'n1', address: '127.0.0.1', leaseTtl: 3 });
    t.teardown(() => m.leave());
    const wireguard = { publicKey: `${'A'.repeat(43)}=`, endpoint: '127.0.0.1:51820', address: '100.64.0.1' };
    await m.updateRecord({ wireguard });
    const kv = await b!.get<Record<string, unknown>>(nodeKey('n1'));
    t.is(kv?.lease, m.lease);
    t.like(kv?.value, { name: 'n1', address: '127.0.0.1', wireguard });
    await m.updateRecord({ wireguard: undefined });
    t.false('wireguard' in (await b!.get<Record<string, unknown>>(nodeKey('n1')))!.value, 'gone from the record, not written as null');
    t.false('wireguard' in m.node);
  });

  test(`${name}: a join waits up to waitMs for a held name to be freed`, async (t) => {
    const [a, b] = await open(t, 2);
    const old = await joinCluster(a!, { name: 'n1', address: '127.0.0.1', leaseTtl: 3 });
    setTimeout(() => void old.leave(), 300);
    const m = await joinCluster(b!, { name: 'n1', address: '127.0.0.2', leaseTtl: 3, waitMs: 3000 });
    t.teardown(() => m.leave());
    t.is((await b!.get<{ address: string }>(nodeKey('n1')))?.value.address, '127.0.0.2');
  });
}
