import test, { type ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { startClusterHosts, type ClusterHost } from './helpers/cluster-hosts.js';
import { within } from './helpers/poll.js';

/**
 * Overlay networks across three "hosts" (namespaces on one LAN, a daemon in each, one etcd):
 * VXLAN between the nodes that have a sandbox on the network, its peers programmed from the
 * store, nothing learned or flooded.
 */

const LEASE_TTL = 3;
const run = promisify(execFile);

interface NetworkJson {
  Id: string;
  Driver: string;
  Scope: string;
  Attachable: boolean;
  Options: Record<string, string>;
  Containers: Record<string, { Name: string; IPv4Address: string; MacAddress: string }>;
}

const inspect = async (h: ClusterHost, name: string): Promise<NetworkJson> => (JSON.parse(await h.tsnet('network', 'inspect', name)) as NetworkJson[])[0]!;
const ipOf = async (h: ClusterHost, sb: string, net: string): Promise<string> => (JSON.parse(await h.tsnet('sandbox', 'inspect', sb)) as { Networks: Record<string, { IPv4Address: string }> }[])[0]!.Networks[net]!.IPv4Address;
const overlayNs = (h: ClusterHost, net: NetworkJson): string => `${h.netnsPrefix}ov+${net.Id.slice(0, 12)}`;
/** `ping` from sandbox `sb` of host `h`; resolves with ping's output, rejects when no reply came. */
const ping = async (h: ClusterHost, sb: string, ip: string, ...args: string[]): Promise<string> => (await run('ip', ['netns', 'exec', `${h.netnsPrefix}${sb}`, 'ping', '-c', '2', '-W', '2', ...args, ip], { timeout: 15_000 })).stdout;
const fdb = async (ns: string): Promise<{ mac: string; dst?: string }[]> => JSON.parse((await run('bridge', ['-n', ns, '-j', 'fdb', 'show', 'dev', 'vxlan0'])).stdout) as { mac: string; dst?: string }[];
const remoteMacs = async (ns: string): Promise<string[]> => (await fdb(ns)).filter((e) => e.dst !== undefined).map((e) => e.mac).sort();


test.serial('sandboxes on an overlay on two hosts resolve and reach each other at MTU 1450; another overlay stays invisible and unreachable; the namespace goes with the last sandbox', async (t) => {
  const c = await startClusterHosts(t, { leaseTtl: LEASE_TTL });
  await Promise.all(c.hosts.map((h) => h.start()));
  const [a, b, n3] = c.hosts as [ClusterHost, ClusterHost, ClusterHost];
  await a.tsnet('network', 'create', '-d', 'overlay', '--attachable', '--subnet', c.subnet(), 'ov1');
  await a.tsnet('network', 'create', '-d', 'overlay', '--attachable', '--subnet', c.subnet(), 'ov2');
  const ov1 = await inspect(a, 'ov1');
  t.is(ov1.Driver, 'overlay');
  t.is(ov1.Scope, 'swarm');
  t.true(ov1.Attachable);
  const vni = Number(ov1.Options['com.docker.network.driver.overlay.vxlanid_list']);
  t.true(vni >= 4096, `VNI ${vni} is above the VLAN ids`);
  t.not((await inspect(a, 'ov2')).Options['com.docker.network.driver.overlay.vxlanid_list'], String(vni), 'one VNI per network');
  await within(5000, 'ov1 on n3', async () => (await inspect(n3, 'ov1')).Id === ov1.Id);
  t.false(existsSync(`/run/netns/${overlayNs(a, ov1)}`), 'a node without a sandbox on it has nothing of the network');

  await a.tsnet('sandbox', 'create', '--name', 'web', '--network', 'ov1');
  await n3.tsnet('sandbox', 'create', '--name', 'client', '--network', 'ov1');
  await b.tsnet('sandbox', 'create', '--name', 'other', '--network', 'ov2');
  const [webIp, clientIp, otherIp] = [await ipOf(a, 'web', 'ov1'), await ipOf(n3, 'client', 'ov1'), await ipOf(b, 'other', 'ov2')];
  t.deepEqual(await n3.dig('client', 'web'), [webIp], 'a sandbox on n3 resolves one on n1 by name');
  t.deepEqual(await a.dig('web', 'client'), [clientIp]);
  t.regex(await ping(n3, 'client', webIp, '-M', 'do', '-s', '1422'), /2 received/, 'a full 1450-byte packet crosses unfragmented');
  const tooBig = await ping(n3, 'client', webIp, '-M', 'do', '-s', '1423', '-c', '1').then(
    () => 'passed',
    (err: { stdout: string; stderr: string }) => err.stdout + err.stderr,
  );
  t.regex(tooBig, /mtu ?= ?1450|message too long/, 'one byte more does not fit');
  t.deepEqual(await n3.dig('client', 'other'), [], 'names on another overlay are invisible');
  await t.throwsAsync(ping(n3, 'client', otherIp, '-c', '1', '-W', '1'), undefined, 'and its sandboxes unreachable');

  // The peers are programmed from the store: each side knows the other's MAC at the other's node, nothing else.
  const mac = (ip: string): string => `02:42:${ip.split('.').map((x) => Number(x).toString(16).padStart(2, '0')).join(':')}`;
  t.deepEqual(await remoteMacs(overlayNs(a, ov1)), [mac(clientIp)]);
  t.deepEqual((await fdb(overlayNs(a, ov1))).find((e) => e.mac === mac(clientIp) && e.dst !== undefined)?.dst, n3.address, 'towards the node it runs on');
  t.deepEqual(await remoteMacs(overlayNs(n3, ov1)), [mac(webIp)]);
  const link = (await run('ip', ['-n', overlayNs(a, ov1), '-d', '-j', 'link', 'show', 'dev', 'vxlan0'])).stdout;
  t.regex(link, /"learning":false/, 'vxlan0 learns nothing');
  t.regex(link, new RegExp(`"id":${vni}\\b`));
  t.regex(link, /"port":4789/);

  // Operations: inspect lists the nodes the network is built on, node ls who carries VXLAN with whom.
  const peers = (JSON.parse(await b.tsnet('network', 'inspect', 'ov1')) as { Peers: { Name: string; IP: string; Sandboxes: string[] }[] }[])[0]!.Peers;
  t.deepEqual(peers, [{ Name: 'n1', IP: a.address, State: 'ready', Sandboxes: ['web'] }, { Name: 'n3', IP: n3.address, State: 'ready', Sandboxes: ['client'] }]);
  const nodes = JSON.parse(await b.tsnet('node', 'ls', '--format', 'json')) as { ID: string; OverlayPeers: string[] }[];
  t.deepEqual(nodes.map((n) => [n.ID, n.OverlayPeers]), [['n1', ['n3']], ['n2', []], ['n3', ['n1']]]);
  t.regex(await a.tsnet('node', 'ls'), /n1\s+\S+\s+ready\s+n3/);

  // A restarted daemon keeps the network's namespace and its peers (read back from the kernel), and the path works on.
  await n3.stop();
  await n3.start();
  t.deepEqual(await remoteMacs(overlayNs(n3, ov1)), [mac(webIp)]);
  t.regex(await ping(n3, 'client', webIp), /2 received/);

  await a.tsnet('sandbox', 'rm', 'web');
  t.false(existsSync(`/run/netns/${overlayNs(a, ov1)}`), 'the last sandbox took the network’s namespace with it');
  await within(5000, 'n3 forgets the removed sandbox', async () => (await remoteMacs(overlayNs(n3, ov1))).length === 0);
});

test.serial('an overlay without --attachable takes no sandbox by hand; an overlay is always swarm-scoped; a node that dies takes its FDB entries from the others within the TTL + 2 s', async (t) => {
  const c = await startClusterHosts(t, { leaseTtl: LEASE_TTL });
  await Promise.all(c.hosts.map((h) => h.start()));
  const [a, , n3] = c.hosts as [ClusterHost, ClusterHost, ClusterHost];
  t.regex((await a.fails('network', 'create', '-d', 'overlay', '--scope', 'local', 'nope')).stderr, /scope is swarm/);
  t.regex((await a.fails('network', 'create', '-d', 'bridge', '--attachable', 'nope')).stderr, /overlay option/);
  await a.tsnet('network', 'create', '-d', 'overlay', '--subnet', c.subnet(), 'svconly');
  t.regex((await a.fails('sandbox', 'create', '--name', 'x', '--network', 'svconly')).stderr, /not manually attachable/);

  await a.tsnet('network', 'create', '-d', 'overlay', '--attachable', '--subnet', c.subnet(), 'ov');
  const ov = await inspect(a, 'ov');
  await within(5000, 'ov on n3', async () => (await inspect(n3, 'ov')).Id === ov.Id);
  await a.tsnet('sandbox', 'create', '--name', 'stay', '--network', 'ov');
  await n3.tsnet('sandbox', 'create', '--name', 'dies', '--network', 'ov');
  await within(5000, 'n1 has the peer on n3', async () => (await remoteMacs(overlayNs(a, ov))).length === 1);
  await n3.kill9();
  const gone = await within((LEASE_TTL + 2) * 1000, 'the dead node’s FDB entry leaves n1', async () => (await remoteMacs(overlayNs(a, ov))).length === 0);
  t.log(`FDB entry gone ${gone} ms after kill -9 (TTL ${LEASE_TTL} s)`);
  t.deepEqual(await a.dig('stay', 'dies'), []);
});

const fixture = (f: string): string => new URL(`./fixtures/${f}`, import.meta.url).pathname;

/** COUNT connections from sandbox `sb` of `h` to `target`:80, counted by the backend that answered. */
async function spread(h: ClusterHost, sb: string, target: string, count: number): Promise<{ ok: number; failed: number; by: Record<string, number> }> {
  const { stdout } = await run('ip', ['netns', 'exec', `${h.netnsPrefix}${sb}`, process.execPath, fixture('connect-loop.mjs'), target, '80', String(count), '8'], { timeout: 120_000 });
  return JSON.parse(stdout) as { ok: number; failed: number; by: Record<string, number> };
}

/** Three hosts with their daemons started and an attachable overlay `app` made on n1 and seen on every node. */
async function threeHostsOnApp(t: ExecutionContext): Promise<[ClusterHost, ClusterHost, ClusterHost]> {
  const c = await startClusterHosts(t, { leaseTtl: LEASE_TTL });
  await Promise.all(c.hosts.map((h) => h.start()));
  const [a] = c.hosts as [ClusterHost];
  await a.tsnet('network', 'create', '-d', 'overlay', '--attachable', '--subnet', c.subnet(), 'app');
  await within(5000, 'app on every node', async () => (await Promise.all(c.hosts.map((h) => inspect(h, 'app').then(() => true)))).every(Boolean));
  return c.hosts as [ClusterHost, ClusterHost, ClusterHost];
}

test.serial('a VIP service on an overlay with a replica on each host: 3000 connections from a sandbox on any host spread over all three within ±10 %; tasks.S answers every node’s task', async (t) => {
  t.timeout(180_000);
  const [a, b, n3] = await threeHostsOnApp(t);
  await a.tsnet('service', 'create', '--name', 'web', '--network', 'app', '--port', 'http:tcp:80', '--replicas', '3', '--health-tcp', '80', '--health-interval', '200', '--', process.execPath, fixture('self-echo.mjs'), '80');
  await a.tsnet('sandbox', 'create', '--name', 'client', '--network', 'app');
  await b.tsnet('sandbox', 'create', '--name', 'client', '--network', 'app');
  await within(30_000, 'three healthy tasks, one per node', async () => (await a.dig('client', 'tasks.web')).length === 3);
  const tasks = await a.dig('client', 'tasks.web');
  const nodes = (JSON.parse(await n3.tsnet('service', 'inspect', 'web')) as { Tasks: { Node: string }[] }[])[0]!.Tasks.map((x) => x.Node).sort();
  t.deepEqual(nodes, ['n1', 'n2', 'n3']);
  t.deepEqual(await b.dig('client', 'tasks.web'), tasks, 'every node answers every node’s tasks');
  for (const [h, who] of [[a, 'n1'], [b, 'n2']] as const) {
    const r = await spread(h, 'client', 'web', 3000);
    t.is(r.failed, 0, `${who}: no connection failed`);
    t.deepEqual(Object.keys(r.by).sort(), tasks, `${who}: every task answered`);
    for (const ip of tasks) t.true(Math.abs((r.by[ip] ?? 0) - 1000) <= 100, `${who}: ${ip} got ${r.by[ip]} of 3000`);
  }
});

test.serial('health and draining act cluster-wide: a task marked unhealthy on its node, or draining, leaves every node’s answers and VIP within 2 s', async (t) => {
  t.timeout(180_000);
  const [a, b, n3] = await threeHostsOnApp(t);
  // No health check of its own: what a task's node says of it is all there is to go by.
  await a.tsnet('service', 'create', '--name', 'api', '--network', 'app', '--port', 'http:tcp:80', '--replicas', '3', '--', process.execPath, fixture('self-echo.mjs'), '80');
  await a.tsnet('sandbox', 'create', '--name', 'client', '--network', 'app');
  const tasks = async (): Promise<{ Id: string; Address: string; Node: string }[]> => (JSON.parse(await a.tsnet('service', 'inspect', 'api')) as { Tasks: { Id: string; Address: string; Node: string }[] }[])[0]!.Tasks;
  await within(30_000, 'three tasks, one per node', async () => new Set((await tasks()).map((x) => x.Node)).size === 3);
  await within(30_000, 'every task answers', async () => Object.keys((await spread(a, 'client', 'api', 60)).by).length === 3);
  const all = await tasks();
  const on = (node: string): { Id: string; Address: string } => all.find((x) => x.Node === node)!;

  await n3.tsnet('service', 'task', 'health', 'api', on('n3').Id, '--healthy', 'false');
  const gone = await within(2000, 'n3’s unhealthy task out of n1’s answers', async () => !(await a.dig('client', 'tasks.api')).includes(on('n3').Address));
  t.log(`unhealthy on n3 → out of n1's tasks.api in ${gone} ms`);
  const healthy = await spread(a, 'client', 'api', 300);
  t.is(healthy.failed, 0);
  t.deepEqual(Object.keys(healthy.by).sort(), [on('n1').Address, on('n2').Address].sort(), 'n1’s VIP sends nothing to n3’s unhealthy task');

  await b.tsnet('service', 'task', 'health', 'api', on('n2').Id, '--draining', 'true');
  await within(2000, 'n2’s draining task out of n1’s answers', async () => !(await a.dig('client', 'tasks.api')).includes(on('n2').Address));
  const drained = await spread(a, 'client', 'api', 300);
  t.deepEqual(drained.by, { [on('n1').Address]: 300 }, 'nor to n2’s draining one');
  t.regex((await a.fails('service', 'task', 'health', 'api', on('n2').Id, '--draining', 'false')).stderr, /runs on node n2: change it there/);

  await n3.tsnet('service', 'task', 'health', 'api', on('n3').Id, '--healthy', 'true');
  await within(2000, 'n3’s task back in n1’s answers', async () => (await a.dig('client', 'tasks.api')).includes(on('n3').Address));
  t.deepEqual(Object.keys((await spread(a, 'client', 'api', 300)).by).sort(), [on('n1').Address, on('n3').Address].sort(), 'healthy again, it is balanced to again');
});

test.serial('an overlay sandbox gets out through its node’s docker_gwbridge (default route, masquerade), which names nothing and joins no two sandboxes, is not for hands, and goes with the last overlay', async (t) => {
  const c = await startClusterHosts(t, { hosts: 2, leaseTtl: LEASE_TTL });
  await Promise.all(c.hosts.map((h) => h.start()));
  const [a, b] = c.hosts as [ClusterHost, ClusterHost];
  await a.tsnet('network', 'create', '-d', 'overlay', '--attachable', '--subnet', c.subnet(), 'ov');
  await a.tsnet('sandbox', 'create', '--name', 's1', '--network', 'ov');
  await a.tsnet('sandbox', 'create', '--name', 's2', '--network', 'ov');
  const gw1 = await ipOf(a, 's1', 'docker_gwbridge');
  const ov1 = await ipOf(a, 's1', 'ov');
  const gwNet = (JSON.parse(await a.tsnet('network', 'inspect', 'docker_gwbridge')) as { IPAM: { Config: { Gateway: string }[] }; Options: Record<string, string> }[])[0]!;
  const route = (await run('ip', ['-n', `${a.netnsPrefix}s1`, 'route', 'show', 'default'])).stdout;
  t.regex(route, new RegExp(`default via ${gwNet.IPAM.Config[0]!.Gateway.replaceAll('.', '\\.')} dev eth1`), 'the default route goes through the gateway bridge');
  const outside = new URL(c.etcd.endpoints[0]!).hostname;
  t.regex(await ping(a, 's1', outside), /2 received/, 'a host on the LAN is reached through the node');
  t.regex(await ping(a, 's2', ov1), /2 received/, 'the overlay still joins them');
  await t.throwsAsync(ping(a, 's2', gw1, '-c', '1', '-W', '1'), undefined, 'the gateway bridge does not');
  t.deepEqual(await a.dig('s2', 's1'), [ov1], 'names answer with the overlay address only');
  t.false((JSON.parse(await b.tsnet('network', 'ls', '--format', 'json')) as { Name: string }[]).some((n) => n.Name === 'docker_gwbridge'), 'a node with no overlay sandbox has none');
  t.regex((await a.fails('sandbox', 'create', '--name', 'x', '--network', 'docker_gwbridge')).stderr, /not by hand/);
  t.regex((await a.fails('network', 'disconnect', 'docker_gwbridge', 's1')).stderr, /last overlay/);
  t.regex((await a.fails('network', 'create', 'docker_gwbridge')).stderr, /made by tsnet/);
  await a.tsnet('network', 'disconnect', 'ov', 's2');
  const left = JSON.parse(await a.tsnet('sandbox', 'inspect', 's2')) as { Networks: Record<string, unknown> }[];
  t.deepEqual(Object.keys(left[0]!.Networks), [], 'the gateway bridge left with the last overlay');
});

/** Whether a program on host `h` could listen on TCP `port` (every address): `free`, or why not. */
async function portState(h: ClusterHost, port: number): Promise<string> {
  const probe = `const s = require('net').createServer(); s.on('error', (e) => { console.log(e.code); process.exit(0); }); s.listen(${port}, () => { console.log('free'); process.exit(0); });`;
  return (await run('ip', ['netns', 'exec', h.netns, process.execPath, '-e', probe], { timeout: 10_000 })).stdout.trim();
}

test.serial('the routing mesh: a port a service on an overlay publishes answers on every node, one with no task too, balanced over the tasks wherever they run', async (t) => {
  t.timeout(180_000);
  const c = await startClusterHosts(t, { leaseTtl: LEASE_TTL });
  await Promise.all(c.hosts.map((h) => h.start()));
  const [a, , n3] = c.hosts as [ClusterHost, ClusterHost, ClusterHost];
  await a.tsnet('network', 'create', '-d', 'overlay', '--attachable', '--subnet', c.subnet(), 'app');
  await within(5000, 'app on every node', async () => (await Promise.all(c.hosts.map((h) => inspect(h, 'app').then(() => true)))).every(Boolean));
  await a.tsnet('service', 'create', '--name', 'web', '--network', 'app', '--port', 'http:tcp:80', '--replicas', '2', '--publish', '8080:80', '--health-tcp', '80', '--health-interval', '200', '--', process.execPath, fixture('self-echo.mjs'), '80');
  const tasksOf = async (): Promise<{ Node: string; Healthy: boolean }[]> => (JSON.parse(await n3.tsnet('service', 'inspect', 'web')) as { Tasks: { Node: string; Healthy: boolean }[] }[])[0]!.Tasks;
  await within(30_000, 'two healthy tasks', async () => (await tasksOf()).filter((x) => x.Healthy).length === 2);
  const withTask = new Set((await tasksOf()).map((x) => x.Node));
  t.is(withTask.size, 2);
  t.true(c.hosts.some((h) => !withTask.has(h.name)), 'one node runs no task');
  for (const h of c.hosts) {
    // From outside: the LAN's own namespace, as a client on the underlay would connect.
    const seen = await within(15_000, `${h.name}:8080 answers`, async () => {
      const { stdout } = await run('ip', ['netns', 'exec', c.lan, process.execPath, fixture('connect-loop.mjs'), h.address, '8080', '60', '4'], { timeout: 60_000 });
      const r = JSON.parse(stdout) as { ok: number; failed: number; by: Record<string, number> };
      return r.ok === 60 && r.failed === 0 && Object.keys(r.by).length === 2;
    });
    t.log(`${h.name} (${withTask.has(h.name) ? 'has a task' : 'no task'}): both tasks answered through its port 8080 (${seen} ms)`);
  }
  // Every node holds the port, as docker-proxy would: nothing else on a host can take it.
  for (const h of c.hosts) t.is(await portState(h, 8080), 'EADDRINUSE', `${h.name} holds 8080`);
  t.regex((await a.fails('sandbox', 'create', '--name', 'ingress-sbox')).stderr, /routing mesh/);
  await a.tsnet('service', 'rm', 'web');
  await within(10_000, 'the ingress sandboxes go with the last published service', async () => {
    const lists = await Promise.all(c.hosts.map((h) => h.tsnet('sandbox', 'ls')));
    return lists.every((l) => !l.includes('ingress-sbox'));
  });
  for (const h of c.hosts) await within(5000, `${h.name} lets 8080 go`, async () => (await portState(h, 8080)) === 'free');
});

test.serial('--publish mode=host on an overlay service opens the port only on the node that runs a task, and keeps the client’s address; the mesh shows the ingress sandbox’s', async (t) => {
  t.timeout(180_000);
  const c = await startClusterHosts(t, { hosts: 2, leaseTtl: LEASE_TTL });
  await Promise.all(c.hosts.map((h) => h.start()));
  const [a, b] = c.hosts as [ClusterHost, ClusterHost];
  await a.tsnet('network', 'create', '-d', 'overlay', '--subnet', c.subnet(), 'app');
  await within(5000, 'app on n2', async () => (await inspect(b, 'app').then(() => true)));
  const peer = fixture('peer-echo.mjs');
  await a.tsnet('service', 'create', '--name', 'direct', '--network', 'app', '--replicas', '1', '--publish', 'mode=host,published=8081,target=80', '--health-tcp', '80', '--health-interval', '200', '--', process.execPath, peer, '80');
  await a.tsnet('service', 'create', '--name', 'meshed', '--network', 'app', '--replicas', '1', '--publish', 'mode=ingress,published=8082,target=80', '--health-tcp', '80', '--health-interval', '200', '--', process.execPath, peer, '80');
  const nodeOf = async (svc: string): Promise<string | undefined> => (JSON.parse(await a.tsnet('service', 'inspect', svc)) as { Tasks: { Node: string; Healthy: boolean }[] }[])[0]!.Tasks.find((x) => x.Healthy)?.Node;
  await within(30_000, 'both tasks healthy', async () => (await nodeOf('direct')) !== undefined && (await nodeOf('meshed')) !== undefined);
  const [withTask, without] = (await nodeOf('direct')) === a.name ? [a, b] : [b, a];
  const client = new URL(c.etcd.endpoints[0]!).hostname;
  const ask = async (h: ClusterHost, port: number): Promise<string> => (await run('ip', ['netns', 'exec', c.lan, process.execPath, fixture('ask.mjs'), 'tcp', h.address, String(port)], { timeout: 10_000 })).stdout.trim();
  const direct = await within(10_000, 'mode=host answers where its task runs', async () => (await ask(withTask, 8081)).length > 0);
  t.log(`mode=host answered in ${direct} ms`);
  t.is(await ask(withTask, 8081), client, 'the task sees the client’s own address');
  await t.throwsAsync(ask(without, 8081), undefined, 'the node without a task opens nothing');
  t.is(await portState(withTask, 8081), 'EADDRINUSE', 'the node with the task holds 8081');
  t.is(await portState(without, 8081), 'free', 'the node without one holds nothing, the node that made the service included');
  for (const h of c.hosts) {
    await within(10_000, `mesh on ${h.name}`, async () => (await ask(h, 8082)).length > 0);
    t.not(await ask(h, 8082), client, `${h.name}: through the mesh the task sees an ingress sandbox’s address`);
  }
  t.regex((await a.fails('service', 'create', '--name', 'bad', '--network', 'app', '--publish', 'mode=sideways,published=1,target=2')).stderr, /mode "sideways"/);
});
