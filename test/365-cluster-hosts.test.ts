// The hosts are namespaces because each node needs its own kernel view: a swarm network has the same bridge names on every node.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { startClusterHosts, type ClusterHosts } from './helpers/cluster-hosts.js';

const run = promisify(execFile);
const namespaces = async (): Promise<string[]> => (JSON.parse((await run('ip', ['-j', 'netns', 'list'])).stdout || '[]') as { name: string }[]).map((n) => n.name);
// A zombie counts as gone: killed, only not reaped yet by whoever inherited it.
const alive = (pid: number): boolean => existsSync(`/proc/${pid}`) && !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));

// What the first test made, for the second to check that its teardown removed it all.
let made: { cluster: ClusterHosts; etcdPids: number[]; sandbox: string; sleeper: number } | undefined;

test.serial('three host namespaces on one LAN reach each other and a three-member etcd', async (t) => {
  const cluster = await startClusterHosts(t, { etcdMembers: 3 });
  const [h1, h2, h3] = cluster.hosts;
  const all = await namespaces();
  t.true(all.includes(cluster.lan));
  for (const h of cluster.hosts) t.true(all.includes(h.netns), h.netns);
  t.deepEqual(cluster.hosts.map((h) => h.name), ['n1', 'n2', 'n3']);
  t.is(cluster.storeUrl, `etcd://${cluster.etcd.endpoints.map((e) => new URL(e).host).join(',')}`);
  t.true(cluster.hosts.every((h) => h.bridge.length <= 15 && h.netnsPrefix.includes(cluster.tag)));
  for (const [from, to] of [[h1!, h2!], [h2!, h3!], [h3!, h1!]] as const) {
    await t.notThrowsAsync(from.exec('ping', '-c', '1', '-W', '2', to.address), `${from.name} pings ${to.name}`);
  }
  // Every member answers every host: each one is written through a different host and read back by the next.
  const env = { ...process.env, ETCDCTL_API: '3' };
  for (const [i, endpoint] of cluster.etcd.endpoints.entries()) {
    const writer = cluster.hosts[i % 3]!.netns;
    const reader = cluster.hosts[(i + 1) % 3]!.netns;
    await run('ip', ['netns', 'exec', writer, 'etcdctl', '--endpoints', endpoint, 'put', `/probe/${i}`, `v${i}`], { env });
    const { stdout } = await run('ip', ['netns', 'exec', reader, 'etcdctl', '--endpoints', endpoint, 'get', '--print-value-only', `/probe/${i}`], { env });
    t.is(stdout.trim(), `v${i}`, endpoint);
  }
  t.truthy(await cluster.etcd.leader());
  // The test's own namespace has no route to the LAN.
  await t.throwsAsync(run('ping', ['-c', '1', '-W', '1', h1!.address]));
  // As a daemon killed mid-change leaves it: a sandbox namespace with a process in it, and its files.
  const sandbox = `${h2!.netnsPrefix}left`;
  await run('ip', ['netns', 'add', sandbox]);
  mkdirSync(`/etc/netns/${sandbox}`, { recursive: true });
  writeFileSync(`/etc/netns/${sandbox}/resolv.conf`, 'nameserver 127.0.0.11\n');
  const sleeper = (await run('sh', ['-c', `ip netns exec ${sandbox} sleep 600 >/dev/null 2>&1 & echo $!`])).stdout.trim();
  // Nothing answers DNS in it: dig fails rather than answering nothing.
  await t.throwsAsync(h2!.dig('left', 'example.test'));
  made = { cluster, etcdPids: cluster.etcd.members.map((m) => m.pid), sandbox, sleeper: Number(sleeper) };
});

test.serial('after the test every namespace, process, sandbox file and dir of the cluster is gone', async (t) => {
  if (made === undefined) return t.fail('the first test did not get as far as making its cluster');
  const { cluster, etcdPids, sandbox, sleeper } = made;
  t.deepEqual((await namespaces()).filter((n) => n.includes(cluster.tag)), []);
  t.false(existsSync(`/etc/netns/${sandbox}`));
  // A SIGKILLed process takes a moment to go.
  for (let i = 0; i < 50 && [sleeper, ...etcdPids].some(alive); i++) await new Promise((r) => setTimeout(r, 100));
  t.deepEqual([sleeper, ...etcdPids].filter(alive), []);
  t.false(existsSync(dirname(cluster.hosts[0]!.stateDir)));
});
