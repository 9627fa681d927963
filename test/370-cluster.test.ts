import test from 'ava';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { call } from '../src/control/client.js';
import { Cidr } from '../src/net/ipam/cidr.js';
import { answersPing, BIN } from './helpers/daemon.js';
import { startClusterHosts, type ClusterHost } from './helpers/cluster-hosts.js';
import { within } from './helpers/poll.js';

/**
 * Three daemons, each in its own "host" namespace, on one etcd cluster: what one node changes
 * every node sees, IPAM never hands out one subnet or address twice, replicas spread over the
 * nodes and leave (and come back elsewhere) with a dead node's lease.
 */

const LEASE_TTL = 3;
const run = promisify(execFile);

interface NetworkJson {
  Name: string;
  Scope: string;
  IPAM: { Config: { Subnet: string }[] };
}
interface ServiceJson {
  Name: string;
  VirtualIP: string | null;
  Tasks: { Id: string; Address: string; Node: string; Sandbox: string | null }[];
}

const networks = async (h: ClusterHost): Promise<NetworkJson[]> => JSON.parse(await h.tsnet('network', 'ls', '--format', 'json')) as NetworkJson[];
const inspectService = async (h: ClusterHost, name: string): Promise<ServiceJson> => (JSON.parse(await h.tsnet('service', 'inspect', name)) as ServiceJson[])[0]!;


async function startAll(hosts: readonly ClusterHost[]): Promise<void> {
  await Promise.all(hosts.map((h) => h.start()));
}

test.serial('a swarm network made on one node is listed on all; node ls shows every node ready; local networks stay their node’s', async (t) => {
  const c = await startClusterHosts(t, { leaseTtl: LEASE_TTL });
  await startAll(c.hosts);
  const [a, b, n3] = c.hosts as [ClusterHost, ClusterHost, ClusterHost];
  const nodes = JSON.parse(await b.tsnet('node', 'ls', '--format', 'json')) as { ID: string; Status: { State: string; Addr: string } }[];
  t.deepEqual(nodes.map((n) => [n.ID, n.Status.State, n.Status.Addr]), c.hosts.map((h) => [h.name, 'ready', h.address]));
  t.regex(await a.tsnet('node', 'ls'), /NAME\s+ADDRESS\s+STATUS/);
  await a.tsnet('network', 'create', '--scope', 'swarm', 'shared');
  await a.tsnet('network', 'create', 'mine');
  for (const h of c.hosts) {
    const names = (await networks(h)).map((n) => `${n.Name}/${n.Scope}`).sort();
    t.true(names.includes('shared/swarm'), `${h.name} lists the swarm network`);
    t.is(names.includes('mine/local'), h === a, `${h.name}: a local network is its node's alone`);
    t.true(names.includes('bridge/local'), `${h.name} has its own bridge`);
  }
  // Sandboxes on the swarm network on two nodes resolve each other by name (the answers come from the store).
  await a.tsnet('sandbox', 'create', '--name', 'web', '--network', 'shared');
  await n3.tsnet('sandbox', 'create', '--name', 'client', '--network', 'shared');
  const ipOf = async (h: ClusterHost, sb: string): Promise<string> => (JSON.parse(await h.tsnet('sandbox', 'inspect', sb)) as { Networks: Record<string, { IPv4Address: string }> }[])[0]!.Networks.shared!.IPv4Address;
  const [webIp, clientIp] = [await ipOf(a, 'web'), await ipOf(n3, 'client')];
  t.not(webIp, clientIp, 'addresses on a swarm network are the cluster’s');
  t.deepEqual(await n3.dig('client', 'web'), [webIp]);
  t.deepEqual(await a.dig('web', 'client'), [clientIp]);
  t.is((await a.fails('network', 'create', '--scope', 'swarm', 'shared')).code, 1, 'one swarm name in the cluster');
  // A service on a local network is its node's: its replicas all run there, other nodes neither
  // list nor answer it, and their own same-named network is another network.
  await a.tsnet('service', 'create', '--name', 'solo', '--network', 'mine', '--replicas', '2', '--', 'sleep', '1000');
  await within(15_000, 'both replicas of solo on its node', async () => (await inspectService(a, 'solo')).Tasks.length === 2);
  await new Promise((r) => setTimeout(r, 1000));
  const solo = await inspectService(a, 'solo');
  t.deepEqual(solo.Tasks.map((x) => x.Node), [a.name, a.name], 'no slot of a local service is placed on another node');
  const mineSubnet = Cidr.parse((await networks(a)).find((n) => n.Name === 'mine')!.IPAM.Config[0]!.Subnet);
  t.true(mineSubnet.contains(solo.VirtualIP!), 'the VIP is on the local network');
  for (const h of [b, n3]) t.deepEqual(JSON.parse(await h.tsnet('service', 'ls', '--format', 'json')), [], `${h.name} does not list another node's local service`);
  await b.tsnet('network', 'create', 'mine');
  await b.tsnet('service', 'create', '--name', 'own', '--network', 'mine');
  await b.tsnet('sandbox', 'create', '--name', 'asker', '--network', 'mine');
  const own = await inspectService(b, 'own');
  const bMine = Cidr.parse((await networks(b)).find((n) => n.Name === 'mine')!.IPAM.Config[0]!.Subnet);
  t.true(bMine.contains(own.VirtualIP!) && !mineSubnet.overlaps(bMine), `b's service is on b's own network (${bMine.toString()}, a's ${mineSubnet.toString()})`);
  t.deepEqual(await b.dig('asker', 'own'), [own.VirtualIP]);
  t.deepEqual(await b.dig('asker', 'solo'), [], 'a local service of another node does not answer');
  t.deepEqual((JSON.parse(await a.tsnet('service', 'ls', '--format', 'json')) as ServiceJson[]).map((s) => s.Name), ['solo'], "a does not list b's");
});

test.serial('30 networks made at once from three nodes get pool subnets that never overlap; concurrent service VIPs are unique', async (t) => {
  const c = await startClusterHosts(t, { leaseTtl: LEASE_TTL });
  await startAll(c.hosts);
  // Through the API: 30 CLI processes starting at once on two cores took past the CLI's timeout.
  await Promise.all(c.hosts.flatMap((h, i) => Array.from({ length: 10 }, (_, k) => call(h.socket, 'POST', '/networks/create', { Name: `n${i}-${k}` }))));
  const subnets = (await Promise.all(c.hosts.map(networks))).flat().filter((n) => n.Name !== 'bridge').map((n) => n.IPAM.Config[0]!.Subnet);
  t.is(subnets.length, 30);
  const cidrs = subnets.map((s) => Cidr.parse(s));
  for (const [i, x] of cidrs.entries()) for (const y of cidrs.slice(i + 1)) t.false(x.overlaps(y), `${x.toString()} overlaps ${y.toString()}`);
  await c.hosts[0]!.tsnet('network', 'create', '--scope', 'swarm', '--subnet', c.subnet(), 'svcnet');
  await within(5000, 'svcnet on every node', async () => (await Promise.all(c.hosts.map(networks))).every((l) => l.some((n) => n.Name === 'svcnet')));
  await Promise.all(c.hosts.flatMap((h, i) => Array.from({ length: 5 }, (_, k) => call(h.socket, 'POST', '/services/create', { Name: `s${i}-${k}`, Network: 'svcnet', EndpointMode: 'vip' }))));
  const vips = (JSON.parse(await c.hosts[1]!.tsnet('service', 'ls', '--format', 'json')) as ServiceJson[]).map((s) => s.VirtualIP);
  t.is(vips.length, 15);
  t.is(new Set(vips).size, 15, `VIPs ${vips.join(' ')}`);
});

test.serial('3 replicas go one per node; a node killed with -9 loses its task from tasks.S within the TTL + 2 s, the slot is taken elsewhere, and its restart duplicates no task', async (t) => {
  const c = await startClusterHosts(t, { leaseTtl: LEASE_TTL });
  await startAll(c.hosts);
  const [a, b, n3] = c.hosts as [ClusterHost, ClusterHost, ClusterHost];
  await a.tsnet('network', 'create', '--scope', 'swarm', '--subnet', c.subnet(), 'app');
  await within(5000, 'app on every node', async () => (await Promise.all(c.hosts.map(networks))).every((l) => l.some((n) => n.Name === 'app')));
  await a.tsnet('service', 'create', '--name', 'api', '--network', 'app', '--replicas', '3', '--', 'sleep', '1000');
  await within(15_000, 'one replica per node', async () => new Set((await inspectService(b, 'api')).Tasks.map((x) => x.Node)).size === 3);
  await b.tsnet('sandbox', 'create', '--name', 'probe', '--network', 'app');
  const tasksSeen = async (): Promise<string[]> => b.dig('probe', 'tasks.api');
  await within(5000, 'tasks.api answers 3', async () => (await tasksSeen()).length === 3);
  const killedTask = (await inspectService(b, 'api')).Tasks.find((x) => x.Node === n3.name)!;
  await n3.kill9();
  const gone = await within((LEASE_TTL + 2) * 1000, `the dead node's task leaves tasks.api`, async () => !(await tasksSeen()).includes(killedTask.Address));
  t.log(`task gone from tasks.api ${gone} ms after kill -9 (TTL ${LEASE_TTL} s)`);
  await within(15_000, 'the slot is rescheduled on a live node', async () => {
    const s = await inspectService(b, 'api');
    return s.Tasks.length === 3 && s.Tasks.every((x) => x.Node !== n3.name);
  });
  t.is((await tasksSeen()).length, 3);
  await n3.start(['--log-level', 'info']);
  await new Promise((r) => setTimeout(r, 3000));
  const after = await inspectService(b, 'api');
  t.is(after.Tasks.length, 3, `no duplicates after the restart: ${JSON.stringify(after.Tasks)}`);
  t.is(new Set(after.Tasks.map((x) => x.Id)).size, 3);
  const onN3 = JSON.parse(await n3.tsnet('sandbox', 'ls', '--format', 'json')) as { Name: string }[];
  t.deepEqual(onN3.filter((s) => s.Name.startsWith('api.')).map((s) => s.Name), [], `the restarted node removed its replica, whose slot another node holds: ${n3.logs()}`);
});

test.serial('killing the etcd leader: changes resume within 5 s and nothing acknowledged is lost', async (t) => {
  const c = await startClusterHosts(t, { leaseTtl: 5, etcdMembers: 3 });
  await startAll(c.hosts);
  const [a, b] = c.hosts as [ClusterHost, ClusterHost, ClusterHost];
  await a.tsnet('network', 'create', '--scope', 'swarm', '--subnet', c.subnet(), 'app');
  const acked: string[] = [];
  for (let i = 0; i < 5; i++) acked.push((await a.tsnet('sandbox', 'create', '--name', `s${i}`, '--network', 'app')) && `s${i}`);
  const leader = await c.etcd.leader();
  await leader.kill();
  const killedAt = Date.now();
  let i = 5;
  await within(5000, 'a change after the leader died', async () => {
    await a.tsnet('sandbox', 'create', '--name', `s${i}`, '--network', 'app');
    acked.push(`s${i++}`);
    return true;
  });
  t.log(`first change after the leader kill acknowledged after ${Date.now() - killedAt} ms`);
  await b.tsnet('sandbox', 'create', '--name', 'probe', '--network', 'app');
  for (const name of acked) t.is((await b.dig('probe', name)).length, 1, `${name} answers on another node`);
  t.is((await a.tsnet('node', 'ls')).match(/ready/g)?.length, 3);
});

test.serial('with etcd unreachable a node keeps answering names, /_ping answers, node ls says the store is down, changes get a 503 and make nothing; it catches up when etcd is back', async (t) => {
  const c = await startClusterHosts(t, { leaseTtl: 10, hosts: 2 });
  await startAll(c.hosts);
  const [a, b] = c.hosts as [ClusterHost, ClusterHost];
  await a.tsnet('network', 'create', '--scope', 'swarm', '--subnet', c.subnet(), 'app');
  await a.tsnet('sandbox', 'create', '--name', 'web', '--network', 'app');
  await b.tsnet('sandbox', 'create', '--name', 'client', '--network', 'app');
  const member = c.etcd.members[0]!;
  await member.kill();
  let last = '';
  const refused = await within(8000, 'changes refused', async () => {
    last = (await b.fails('sandbox', 'create', '--name', 'late', '--network', 'app')).stderr;
    return last.includes('the cluster store (etcd) is unreachable');
  }).catch((err: Error) => {
    throw new Error(`${err.message}; last: ${last}`);
  });
  t.log(`changes refused ${refused} ms after etcd went away`);
  t.is((await b.dig('client', 'web')).length, 1, 'names still resolve from what the node last saw');
  const { stdout, stderr } = await run(process.execPath, [BIN, '--socket', b.socket, 'node', 'ls']);
  t.regex(stdout, /NAME\s+ADDRESS\s+STATUS/, 'the list as last seen');
  t.regex(stderr, /the store \(etcd\) is down/);
  t.true(await answersPing(b.socket), '/_ping answers');
  t.deepEqual(JSON.parse(await b.tsnet('sandbox', 'ls', '--format', 'json')).map((s: { Name: string }) => s.Name), ['client'], 'nothing of the refused change was made');
  await member.restart();
  await within(15_000, 'changes accepted again', async () => (await b.tsnet('sandbox', 'create', '--name', 'late', '--network', 'app')) !== undefined);
  await within(5000, 'the new sandbox resolves on the other node', async () => (await a.dig('web', 'late')).length === 1);
  t.pass();
});

test.serial('node rm takes a down node’s leftovers: the address it held on a swarm network and the services of its local networks are free again; a ready node or this one cannot be removed', async (t) => {
  const c = await startClusterHosts(t, { leaseTtl: LEASE_TTL });
  await startAll(c.hosts);
  const [a, b, n3] = c.hosts as [ClusterHost, ClusterHost, ClusterHost];
  const subnet = c.subnet();
  const held = subnet.replace(/0\/24$/, '50');
  await a.tsnet('network', 'create', '--scope', 'swarm', '--subnet', subnet, 'sw');
  await within(5000, 'sw on n3', async () => (await networks(n3)).some((n) => n.Name === 'sw'));
  await n3.tsnet('sandbox', 'create', '--name', 'gone', '--network', `sw:ip=${held}`);
  await n3.tsnet('network', 'create', 'n3net');
  await n3.tsnet('service', 'create', '--name', 'n3svc', '--network', 'n3net');
  await n3.kill9();
  const nodeState = async (h: ClusterHost, name: string): Promise<string | undefined> =>
    (JSON.parse(await h.tsnet('node', 'ls', '--format', 'json')) as { ID: string; Status: { State: string } }[]).find((n) => n.ID === name)?.Status.State;
  await within((LEASE_TTL + 2) * 1000, 'n3 down', async () => (await nodeState(a, n3.name)) === 'down');
  // Past its lease the address stays claimed: a node cut off from the store may still run what holds it.
  t.regex((await a.fails('sandbox', 'create', '--name', 'early', '--network', `sw:ip=${held}`)).stderr, /in use/);
  t.regex((await a.fails('node', 'rm', b.name)).stderr, /is ready/);
  t.regex((await a.fails('node', 'rm', a.name)).stderr, /this daemon's own|is ready/);
  t.regex((await a.fails('node', 'rm', 'nosuch')).stderr, /not found/);
  t.is((await a.tsnet('node', 'rm', n3.name)).trim(), n3.name);
  t.is(await nodeState(a, n3.name), undefined, 'node ls no longer shows it');
  await a.tsnet('sandbox', 'create', '--name', 'late', '--network', `sw:ip=${held}`);
  await b.tsnet('sandbox', 'create', '--name', 'probe', '--network', 'sw');
  t.deepEqual(await b.dig('probe', 'late'), [held], 'the address is the new sandbox’s across the cluster');
  await b.tsnet('service', 'create', '--name', 'n3svc', '--network', 'sw');
  t.pass('the name of a service on the removed node’s local network is free again');
});
