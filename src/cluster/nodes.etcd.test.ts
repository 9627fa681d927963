// Membership against real etcd where only etcd can show it: a killed node's lease running out,
// a lease lost under a live node (revoked behind its back, or etcd down past the TTL).
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import test, { type ExecutionContext } from 'ava';
import { etcdClients } from '../../test/helpers/cluster-stores.js';
import { startEtcd, type TestEtcd } from '../../test/helpers/etcd.js';
import { within } from '../store/store.case.js';
import { put, type Store } from '../store/store.js';
import { nodeKey, taskKey } from './keys.js';
import { NodeList } from './node-list.js';
import { joinCluster, type Membership, type MembershipEvent } from './nodes.js';

const TTL = 3;

/** Starts a node process that joins as `name`; resolves once it is in. Killed when the test ends. */
async function nodeProcess(t: ExecutionContext, etcd: TestEtcd, name: string): Promise<{ kill(): void }> {
  const child = spawn(process.execPath, ['--import=tsx', 'test/helpers/cluster-node.ts', etcd.endpoints.join(','), name, String(TTL)], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => void child.kill('SIGKILL'));
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  await Promise.race([
    within(15_000, async () => out.includes('joined')),
    once(child, 'exit').then(([code]) => Promise.reject(new Error(`node ${name} exited ${String(code)} before joining`))),
  ]);
  return { kill: () => void child.kill('SIGKILL') };
}

/** Revokes a lease behind its owner's back, through etcd's JSON gateway. */
async function revokeBehind(etcd: TestEtcd, lease: string): Promise<void> {
  const r = await fetch(`${etcd.endpoints[0]}/v3/lease/revoke`, { method: 'POST', body: JSON.stringify({ ID: lease }) });
  if (!r.ok) throw new Error(`revoke ${lease}: ${r.status} ${await r.text()}`);
}

/** Node n1 joined on a fresh etcd, owning endpoint e1, with its events recorded; `other` is a second client. */
async function joinedNode(t: ExecutionContext): Promise<{ etcd: TestEtcd; other: Store; m: Membership; seen: MembershipEvent[] }> {
  const etcd = await startEtcd(t);
  const [store, other] = etcdClients(t, etcd, 2) as [Store, Store];
  const m = await joinCluster(store, { name: 'n1', address: '127.0.0.1', leaseTtl: TTL, retryMs: 200 });
  t.teardown(() => m.leave());
  const seen: MembershipEvent[] = [];
  m.onEvent((e) => seen.push(e));
  await m.put('endpoints/net/e1', { id: 'e1' });
  return { etcd, other, m, seen };
}

const types = (seen: MembershipEvent[]): string[] => seen.map((e) => e.type).filter((type, i, all) => type !== 'retrying' || all[i - 1] !== 'retrying');

test(`nodes killed with SIGKILL go down on a watcher within TTL + 2 s (TTL ${TTL} s)`, async (t) => {
  const etcd = await startEtcd(t);
  const [store] = etcdClients(t, etcd);
  const list = await NodeList.open(store!);
  t.teardown(() => list.close());
  const names = ['k1', 'k2', 'k3'];
  const nodes = await Promise.all(names.map((n) => nodeProcess(t, etcd, n)));
  await within(5000, async () => names.every((n) => list.get(n)?.state === 'ready'));
  const downAt = new Map<string, number>();
  list.onChange((s) => s.state === 'down' && downAt.set(s.name, Date.now()));
  const killed = Date.now();
  for (const n of nodes) n.kill();
  await within((TTL + 2) * 1000, async () => downAt.size === names.length);
  const ms = names.map((n) => downAt.get(n)! - killed);
  t.log(`down after kill -9: ${ms.join(', ')} ms`);
  t.true(ms.every((x) => x <= (TTL + 2) * 1000));
  t.deepEqual(list.ready(), []);
  t.deepEqual(list.all().map((s) => s.state), ['down', 'down', 'down']);
});

test('a lease revoked behind a live node: the node key and owned keys are written again under a new lease', async (t) => {
  const { etcd, other, m, seen } = await joinedNode(t);
  t.true(await m.create(taskKey('svc', 'slot-1'), { node: 'n1' }));
  t.true(await m.create(taskKey('svc', 'slot-2'), { node: 'n1' }));
  // While n1 is away, n2 takes slot 2 (one transaction before the revoke, so the race is certain).
  const n2 = await other.grantLease(TTL + 5);
  await put(other!, taskKey('svc', 'slot-2'), { node: 'n2' }, n2.id);
  const old = m.lease!;
  await revokeBehind(etcd, old);
  await within(TTL * 1000 + 2000, async () => seen.some((e) => e.type === 'renewed'));
  t.deepEqual(types(seen), ['lost', 'dropped', 'renewed']);
  t.not(m.lease, old);
  for (const key of [nodeKey('n1'), 'endpoints/net/e1', taskKey('svc', 'slot-1')]) t.is((await other.get(key))?.lease, m.lease, key);
  t.deepEqual((await other.get(taskKey('svc', 'slot-2')))?.value, { node: 'n2' });
  t.deepEqual(m.owned().sort(), ['endpoints/net/e1', taskKey('svc', 'slot-1')]);
});

test('a node whose name was taken while its lease was lost is evicted, not a second holder', async (t) => {
  const { etcd, other, m, seen } = await joinedNode(t);
  const usurper = await other.grantLease(TTL + 5);
  await put(other!, nodeKey('n1'), { name: 'n1', address: '127.0.0.9', startedAt: 'now' }, usurper.id);
  await revokeBehind(etcd, m.lease!);
  await within(TTL * 1000 + 2000, async () => seen.some((e) => e.type === 'evicted'));
  t.like(seen.at(-1), { type: 'evicted', holder: { address: '127.0.0.9' } });
  t.is(await other.get('endpoints/net/e1'), undefined, 'the evicted node wrote nothing back');
  await t.throwsAsync(m.put('x', 1), { message: /has left the cluster/ });
});

test('etcd down past the TTL: the lease is lost, renewal retries, and once etcd is back every key is under the new lease', async (t) => {
  const { etcd, other, m, seen } = await joinedNode(t);
  t.true(await m.create(taskKey('svc', 'slot-1'), { node: 'n1' }));
  await etcd.members[0]!.kill();
  await within(TTL * 1000 + 3000, async () => seen.some((e) => e.type === 'lost'));
  await t.throwsAsync(m.create(taskKey('svc', 'slot-2'), {}), { message: /lease is lost and being renewed/ });
  await m.put('endpoints/net/e2', { id: 'e2' });
  await etcd.members[0]!.restart();
  await within(20_000, async () => seen.some((e) => e.type === 'renewed'));
  t.deepEqual(types(seen).filter((x) => x !== 'retrying'), ['lost', 'renewed']);
  for (const key of [nodeKey('n1'), 'endpoints/net/e1', 'endpoints/net/e2', taskKey('svc', 'slot-1')]) t.is((await other.get(key))?.lease, m.lease, key);
});
