import test from 'ava';
import { backends } from '../../test/helpers/cluster-stores.js';
import { within } from '../store/store.case.js';
import { NodeList, type NodeStatus } from './node-list.js';
import { joinCluster } from './nodes.js';

for (const { name, open } of backends) {
  test(`${name}: nodes are ready while their key lives, down once it is gone, and ready again when back`, async (t) => {
    const [a, b] = await open(t, 2);
    const m1 = await joinCluster(a!, { name: 'n1', address: '127.0.0.1', leaseTtl: 3 });
    t.teardown(() => m1.leave());
    const list = await NodeList.open(b!);
    t.teardown(() => list.close());
    const seen: string[] = [];
    list.onChange((s: NodeStatus) => seen.push(`${s.name} ${s.state}`));
    t.deepEqual(list.ready(), ['n1']);
    const m2 = await joinCluster(a!, { name: 'n2', address: '127.0.0.2', leaseTtl: 3 });
    await within(3000, async () => list.ready().length === 2);
    const left = Date.now();
    await m2.leave();
    await within(3000, async () => list.get('n2')?.state === 'down');
    const down = list.get('n2')!;
    t.true(down.since.getTime() >= left - 5);
    t.is(down.node.address, '127.0.0.2', 'a down node keeps its last record');
    t.deepEqual(list.all().map((s) => `${s.name} ${s.state}`), ['n1 ready', 'n2 down']);
    const back = await joinCluster(a!, { name: 'n2', address: '127.0.0.3', leaseTtl: 3 });
    t.teardown(() => back.leave());
    await within(3000, async () => list.get('n2')?.state === 'ready');
    t.is(list.get('n2')?.node.address, '127.0.0.3');
    t.deepEqual(seen, ['n2 ready', 'n2 down', 'n2 ready']);
  });
}
