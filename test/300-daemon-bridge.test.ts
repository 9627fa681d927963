import test, { type ExecutionContext } from 'ava';
import { execFile, spawn } from 'node:child_process';
import { readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { systemTool } from '../src/net/tools.js';
import { assertBlocked, hostPings, startDaemon, webAndClientOnApp, type TestDaemon } from './helpers/daemon.js';
import { outsideWorld } from './helpers/outside.js';
import { startUpstream } from './helpers/upstream.js';

const run = promisify(execFile);

/** The net namespace of `pid` once it differs from the host's (polled: a new process unshares after it starts). */
async function ownNetns(pid: number): Promise<string> {
  const host = process.env.TSNET_TEST_HOST_NETNS ?? readlinkSync('/proc/self/ns/net');
  for (let i = 0; i < 100; i++) {
    const ns = readlinkSync(`/proc/${pid}/ns/net`);
    if (ns !== host) return ns;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`process ${pid} is still in the host's net namespace ${host} after 2 s`);
}

/** The bridge device of network `net`, as `network inspect` names it. */
const bridgeOf = async (d: TestDaemon, net: string): Promise<string> =>
  JSON.parse(await d.tsnet('network', 'inspect', net))[0].Options['com.docker.network.bridge.name'] as string;

/** The whoami DNS server (answers with the asker's address) at `ip`:53 inside namespace `netns`. */
async function startWhoami(t: ExecutionContext, netns: string, ip: string): Promise<void> {
  const script = new URL('./fixtures/whoami-dns.mjs', import.meta.url).pathname;
  const child = spawn(systemTool('ip'), ['netns', 'exec', netns, process.execPath, script, ip, '53'], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => child.kill('SIGKILL'));
  await new Promise((r) => child.stdout!.once('data', r));
}

test.serial('two sandboxes on a user-defined bridge resolve each other by name, alias, short id and name.network, and ping each other', async (t) => {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  await d.tsnet('network', 'create', '--subnet', d.subnet(), 'app');
  const webId = (await d.tsnet('sandbox', 'create', '--name', 'web', '--network', 'app:alias=www', '--hostname', 'webhost')).trim();
  await d.tsnet('sandbox', 'create', '--name', 'client', '--network', 'app');
  const webIp = JSON.parse(await d.tsnet('sandbox', 'inspect', 'web'))[0].Networks.app.IPv4Address as string;
  for (const name of ['web', 'www', 'webhost', webId.slice(0, 12), 'web.app']) {
    t.regex(await d.tsnet('exec', 'client', '--', 'getent', 'hosts', name), new RegExp(`^${webIp.replaceAll('.', '\\.')}\\s`), name);
    t.is((await d.tsnet('exec', 'client', '--', 'dig', '+short', name)).trim(), webIp, name);
  }
  t.regex(await d.tsnet('exec', 'client', '--', 'ping', '-c', '1', '-W', '2', 'web'), /1 received/);
  t.regex(await d.tsnet('exec', 'web', '--', 'ping', '-c', '1', '-W', '2', 'client'), /1 received/);
  t.is((await d.tsnet('exec', 'web', '--', 'hostname')).trim(), 'webhost');
  const resolv = await d.tsnet('exec', 'client', '--', 'cat', '/etc/resolv.conf');
  t.regex(resolv, /^nameserver 127\.0\.0\.11$/m);
  t.regex(resolv, /^options ndots:0$/m);
});

test.serial('a sandbox on another network can neither resolve nor reach them; connect and disconnect change that at once', async (t) => {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  await d.tsnet('network', 'create', '--subnet', d.subnet(), 'app');
  await d.tsnet('network', 'create', '--subnet', d.subnet(), 'other');
  t.regex((await run(systemTool('nft'), ['list', 'table', 'inet', `tsnet_t${d.tag}`])).stdout, /ct state new drop comment "other"/);
  await d.tsnet('sandbox', 'create', '--name', 'web', '--network', 'app');
  await d.tsnet('sandbox', 'create', '--name', 'lonely', '--network', 'other');
  // The controls: lonely's own neighbour, which it resolves and reaches while web stays out of sight.
  await d.tsnet('sandbox', 'create', '--name', 'neighbour', '--network', 'other');
  const webIp = JSON.parse(await d.tsnet('sandbox', 'inspect', 'web'))[0].Networks.app.IPv4Address as string;
  const neighbourIp = JSON.parse(await d.tsnet('sandbox', 'inspect', 'neighbour'))[0].Networks.other.IPv4Address as string;
  t.is((await d.tsnet('exec', 'lonely', '--', 'dig', '+short', 'neighbour')).trim(), neighbourIp);
  t.regex(await d.tsnet('exec', 'lonely', '--', 'dig', 'web'), /status: NXDOMAIN/);
  t.true(await hostPings(webIp), 'control: web is up');
  await assertBlocked(t, d, 'lonely', webIp, neighbourIp, 'a ping from another network got through');
  await d.tsnet('network', 'connect', '--alias', 'solo', 'app', 'lonely');
  t.is((await d.tsnet('exec', 'lonely', '--', 'dig', '+short', 'web')).trim(), webIp);
  t.regex(await d.tsnet('exec', 'web', '--', 'getent', 'hosts', 'solo'), /solo/);
  t.regex(await d.tsnet('exec', 'lonely', '--', 'ping', '-c', '1', '-W', '2', 'web'), /1 received/);
  await d.tsnet('network', 'disconnect', 'app', 'lonely');
  t.is((await d.tsnet('exec', 'lonely', '--', 'dig', '+short', 'neighbour')).trim(), neighbourIp);
  t.regex(await d.tsnet('exec', 'lonely', '--', 'dig', 'web'), /status: NXDOMAIN/);
  await assertBlocked(t, d, 'lonely', webIp, neighbourIp, 'disconnected, lonely still reached web');
  t.regex(await d.tsnet('exec', 'web', '--', 'dig', 'solo'), /status: NXDOMAIN/);
});

test.serial('the default bridge has no names, but --link writes hosts entries (gone with the linked sandbox) and sets the link variables', async (t) => {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  await d.tsnet('sandbox', 'create', '--name', 'db');
  await d.tsnet('sandbox', 'create', '--name', 'app', '--link', 'db:database');
  const dbIp = JSON.parse(await d.tsnet('sandbox', 'inspect', 'db'))[0].Networks.bridge.IPv4Address as string;
  t.regex(await d.tsnet('exec', 'app', '--', 'dig', 'db'), /status: NXDOMAIN/, 'no DNS names on the default bridge');
  t.regex(await d.tsnet('exec', 'app', '--', 'getent', 'hosts', 'database'), new RegExp(`^${dbIp.replaceAll('.', '\\.')}\\s+database`));
  t.regex(await d.tsnet('exec', 'app', '--', 'ping', '-c', '1', '-W', '2', 'database'), /1 received/);
  t.regex(await d.tsnet('exec', 'app', '--', 'env'), /^DATABASE_NAME=\/app\/database$/m);
  // Its address may go to the next sandbox: the entry goes with it.
  await d.tsnet('sandbox', 'rm', 'db');
  t.notRegex(await d.tsnet('exec', 'app', '--', 'cat', '/etc/hosts'), /database/);
});

test.serial('names nobody owns go to the host upstream, a fake on host loopback', async (t) => {
  const up = await startUpstream(t, { ttl: 77 });
  const d = await startDaemon(t, up.label);
  await d.tsnet('network', 'create', '--subnet', d.subnet(), 'app');
  await d.tsnet('sandbox', 'create', '--name', 'client', '--network', 'app');
  t.is((await d.tsnet('exec', 'client', '--', 'dig', '+short', 'far.fwd.example')).trim(), '127.77.0.1');
  t.is(up.udpQueries, 1);
});

test.serial('after kill -9 and a restart every network, sandbox, name and route works again', async (t) => {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  await webAndClientOnApp(d);
  await d.kill9();
  await d.start();
  t.regex(await d.tsnet('network', 'ls'), /\bapp\b/);
  t.regex(await d.tsnet('exec', 'client', '--', 'getent', 'hosts', 'web'), /\sweb$/m);
  t.regex(await d.tsnet('exec', 'client', '--', 'ping', '-c', '1', '-W', '2', 'web'), /1 received/);
  await d.tsnet('sandbox', 'create', '--name', 'late', '--network', 'app');
  t.regex(await d.tsnet('exec', 'late', '--', 'getent', 'hosts', 'client'), /\sclient$/m);
});

test.serial('a user\'s edit to resolv.conf is kept when tsnet rewrites the sandbox files', async (t) => {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  await d.tsnet('network', 'create', '--subnet', d.subnet(), 'app');
  await d.tsnet('network', 'create', '--subnet', d.subnet(), 'two');
  await d.tsnet('sandbox', 'create', '--name', 'box', '--network', 'app');
  const path = `/etc/netns/${d.netnsPrefix}box/resolv.conf`;
  writeFileSync(path, readFileSync(path, 'utf8') + 'options edns0 # mine\n');
  await d.tsnet('network', 'connect', 'two', 'box');
  t.regex(readFileSync(path, 'utf8'), /# mine/);
  t.regex(readFileSync(`/etc/netns/${d.netnsPrefix}box/hosts`, 'utf8'), /^10\.\d+\.\d+\.\d+\t\S+$/m, 'hosts (not edited) was rewritten with both addresses');
});

test.serial('the control socket is root-only (mode 0600)', async (t) => {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  t.is(statSync(d.socket).mode & 0o777, 0o600);
});

test.serial('bad input gets a clear error, a non-zero exit and changes nothing', async (t) => {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  const subnet = d.subnet();
  await d.tsnet('network', 'create', '--subnet', subnet, 'app');
  await d.tsnet('sandbox', 'create', '--name', 'web', '--network', 'app');
  const before = [await d.tsnet('network', 'ls'), await d.tsnet('sandbox', 'ls')];
  const cases: [string[], RegExp][] = [
    [['sandbox', 'create', '--name', 'x', '--network', 'nope'], /network nope not found/],
    [['sandbox', 'create', '--name', 'web', '--network', 'app'], /sandbox name web is already in use/],
    [['network', 'create', '--subnet', subnet, 'app2'], new RegExp(`subnet ${subnet.replaceAll('.', '\\.')} overlaps network app`)],
    [['network', 'create', 'app'], /network with name app already exists/],
    [['sandbox', 'create', '--name', 'y', '--network', 'app:ip=192.0.2.9'], /address 192\.0\.2\.9 is outside app's subnet/],
    [['network', 'rm', 'app'], /has active endpoints \(web\)/],
    [['network', 'create', 'bad name'], /invalid network name/],
    [['sandbox', 'rm', 'ghost'], /sandbox ghost not found/],
  ];
  for (const [args, message] of cases) {
    const r = await d.fails(...args);
    t.not(r.code, 0, args.join(' '));
    t.regex(r.stderr, message, args.join(' '));
  }
  t.deepEqual([await d.tsnet('network', 'ls'), await d.tsnet('sandbox', 'ls')], before);
});

test.serial('rm and prune leave no namespace, link, or rule behind', async (t) => {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  await d.tsnet('network', 'create', '--subnet', d.subnet(), 'app');
  const device = JSON.parse(await d.tsnet('network', 'inspect', 'app'))[0].Options['com.docker.network.bridge.name'] as string;
  await d.tsnet('sandbox', 'create', '--name', 'a', '--network', 'app');
  const veth = JSON.parse(await d.tsnet('sandbox', 'inspect', 'a'))[0].Networks.app.HostInterface as string;
  await run('ip', ['link', 'show', veth]);
  t.regex((await run('ip', ['netns', 'list'])).stdout, new RegExp(`${d.netnsPrefix}a`), 'control: the namespace is listed while it exists');
  await d.tsnet('sandbox', 'rm', 'a');
  await t.throwsAsync(run('ip', ['link', 'show', veth]));
  t.regex((await run(systemTool('nft'), ['list', 'table', 'inet', `tsnet_t${d.tag}`])).stdout, /"app"/, 'control: the network\'s rules are listed while it exists');
  t.regex(await d.tsnet('network', 'prune', '-f'), /app/);
  t.notRegex((await run('ip', ['netns', 'list'])).stdout, new RegExp(d.netnsPrefix));
  await t.throwsAsync(run('ip', ['link', 'show', device]));
  t.notRegex((await run(systemTool('nft'), ['list', 'table', 'inet', `tsnet_t${d.tag}`])).stdout, /"app"/);
});

test.serial('the docker CLI manages networks through the control socket', async (t) => {
  // .ci/run installs it where the image lacks it: a missing CLI is a failure, not a pass.
  const which = await run('sh', ['-c', 'command -v docker']).catch(() => null);
  if (which === null) return t.fail('no docker CLI on PATH (bash .ci/run installs docker.io)');
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  const docker = async (...args: string[]) => (await run('docker', ['-H', `unix://${d.socket}`, ...args])).stdout;
  const subnet = d.subnet();
  await docker('network', 'create', '--subnet', subnet, 'viadocker');
  t.regex(await docker('network', 'ls'), /viadocker\s+bridge\s+local/);
  t.is(JSON.parse(await docker('network', 'inspect', 'viadocker'))[0].IPAM.Config[0].Subnet, subnet);
  await d.tsnet('sandbox', 'create', '--name', 'box', '--network', 'bridge');
  await docker('network', 'connect', '--alias', 'boxy', 'viadocker', 'box');
  t.is(JSON.parse(await d.tsnet('sandbox', 'inspect', 'box'))[0].Networks.viadocker.Aliases[0], 'boxy');
  t.regex((await run('docker', ['-H', `unix://${d.socket}`, 'network', 'rm', 'viadocker']).catch((e: { stderr: string }) => e)).stderr ?? '', /active endpoints/);
  await docker('network', 'disconnect', 'viadocker', 'box');
  await docker('network', 'rm', 'viadocker');
  t.notRegex(await docker('network', 'ls'), /viadocker/);
});

test.serial('modes: none has only loopback, host runs in the host namespace, container: shares another sandbox\'s', async (t) => {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  await d.tsnet('network', 'create', '--subnet', d.subnet(), 'app');
  await d.tsnet('sandbox', 'create', '--name', 'web', '--network', 'app');
  const webIp = JSON.parse(await d.tsnet('sandbox', 'inspect', 'web'))[0].Networks.app.IPv4Address as string;

  await d.tsnet('sandbox', 'create', '--name', 'isolated', '--network', 'none');
  t.deepEqual((await d.tsnet('exec', 'isolated', '--', 'ip', '-br', 'link')).trim().split('\n').map((l) => l.split(/\s+/)[0]), ['lo']);
  t.true(await hostPings(webIp), 'control: web is up');
  await assertBlocked(t, d, 'isolated', webIp, '127.0.0.1', 'a sandbox with network none reached web');

  await d.tsnet('sandbox', 'create', '--name', 'onhost', '--network', 'host');
  t.is((await d.tsnet('exec', 'onhost', '--', 'readlink', '/proc/self/ns/net')).trim(), process.env.TSNET_TEST_HOST_NETNS ?? (await run('readlink', ['/proc/self/ns/net'])).stdout.trim());

  await d.tsnet('sandbox', 'create', '--name', 'sidecar', '--network', 'container:web');
  t.regex(await d.tsnet('exec', 'sidecar', '--', 'ip', '-4', '-br', 'addr'), new RegExp(webIp.replaceAll('.', '\\.')));
  t.regex((await d.fails('sandbox', 'rm', 'web')).stderr, /shares its namespace with sidecar/);
  t.regex((await d.fails('network', 'connect', 'app', 'sidecar')).stderr, /cannot join networks/);
  t.regex((await run('ip', ['netns', 'list'])).stdout, new RegExp(d.netnsPrefix), 'control: the namespaces are listed while they exist');
  await d.tsnet('sandbox', 'rm', 'sidecar', 'onhost', 'isolated', 'web');
  t.notRegex((await run('ip', ['netns', 'list'])).stdout, new RegExp(d.netnsPrefix));
});

test.serial('--dns servers are asked from inside the sandbox\'s namespace', async (t) => {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  await d.tsnet('network', 'create', '--subnet', d.subnet(), 'app');
  await d.tsnet('sandbox', 'create', '--name', 'dnsbox', '--network', 'app');
  const [box] = JSON.parse(await d.tsnet('sandbox', 'inspect', 'dnsbox'));
  const serverIp = box.Networks.app.IPv4Address as string;
  // Bound to the sandbox's address: 127.0.0.11:53 in there is tsnet's own listener.
  await startWhoami(t, box.NetnsName as string, serverIp);
  await d.tsnet('sandbox', 'create', '--name', 'client', '--network', 'app', '--dns', serverIp);
  const clientIp = JSON.parse(await d.tsnet('sandbox', 'inspect', 'client'))[0].Networks.app.IPv4Address as string;
  t.is((await d.tsnet('exec', 'client', '--', 'dig', '+short', 'who.example')).trim(), clientIp, 'the query left from the client\'s own address');
  t.is((await d.tsnet('exec', 'client', '--', 'dig', '+short', '+tcp', 'who2.example')).trim(), clientIp);
  t.is(up.udpQueries, 0, 'the host upstream was not asked');
  await d.tsnet('exec', 'dnsbox', '--', 'dig', 'far.fwd.example');
  t.is(up.udpQueries, 1, 'control: a sandbox without --dns does ask the host upstream');
});

test.serial('--pid adopts the namespace a runtime made: it is wired and resolves, and rm leaves it to its owner', async (t) => {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  await d.tsnet('network', 'create', '--subnet', d.subnet(), 'app');
  await d.tsnet('sandbox', 'create', '--name', 'web', '--network', 'app');
  const runtime = spawn('unshare', ['--net', 'sleep', '120'], { stdio: 'ignore' });
  t.teardown(() => runtime.kill('SIGKILL'));
  // Until unshare(2) has run, the child is still in the host's namespace: adopting it then would wire the host.
  const inode = await ownNetns(runtime.pid!);
  await d.tsnet('sandbox', 'create', '--name', 'adopted', '--network', 'app', '--pid', String(runtime.pid));
  const ip = JSON.parse(await d.tsnet('sandbox', 'inspect', 'adopted'))[0].Networks.app.IPv4Address as string;
  t.regex((await run('nsenter', ['-t', String(runtime.pid), '-n', 'ip', '-4', '-br', 'addr'])).stdout, new RegExp(ip.replaceAll('.', '\\.')));
  t.regex(await d.tsnet('exec', 'adopted', '--', 'getent', 'hosts', 'web'), /\sweb$/m);
  await d.tsnet('sandbox', 'rm', 'adopted');
  t.is((await run('readlink', [`/proc/${runtime.pid}/ns/net`])).stdout.trim(), inode, 'the runtime\'s namespace is still its own');
  t.notRegex((await run('ip', ['netns', 'list'])).stdout, new RegExp(`${d.netnsPrefix}adopted`));
});

test.serial('a restart removes what the state no longer names (a crash between the kernel change and the store write)', async (t) => {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  await d.tsnet('network', 'create', '--subnet', d.subnet(), 'app');
  await d.tsnet('sandbox', 'create', '--name', 'keep', '--network', 'app');
  await d.tsnet('sandbox', 'create', '--name', 'ghost', '--network', 'app');
  const veth = JSON.parse(await d.tsnet('sandbox', 'inspect', 'ghost'))[0].Networks.app.HostInterface as string;
  await run('ip', ['link', 'show', veth]);
  t.regex((await run('ip', ['netns', 'list'])).stdout, new RegExp(`${d.netnsPrefix}ghost`), 'control: ghost exists before the restart');
  await d.kill9();
  await d.editSaved((state) => ({ ...state, sandboxes: state.sandboxes.filter((s) => s.name !== 'ghost') }));
  await d.start();
  t.notRegex((await run('ip', ['netns', 'list'])).stdout, new RegExp(`${d.netnsPrefix}ghost`));
  await t.throwsAsync(run('ip', ['link', 'show', veth]));
  t.regex(await d.tsnet('exec', 'keep', '--', 'getent', 'hosts', 'keep'), /keep/);
});

test.serial('a dual-stack network gives sandboxes IPv6 addresses that resolve (AAAA) and answer ping -6', async (t) => {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  // A group with a leading 1 is already canonical (a leading 0 would be written without it).
  const v6 = `fd${d.tag.slice(0, 2)}:1${d.tag.slice(3)}::/64`;
  await d.tsnet('network', 'create', '--subnet', d.subnet(), '--subnet', v6, 'dual');
  await d.tsnet('sandbox', 'create', '--name', 'web', '--network', 'dual');
  await d.tsnet('sandbox', 'create', '--name', 'client', '--network', 'dual');
  const web = JSON.parse(await d.tsnet('sandbox', 'inspect', 'web'))[0].Networks.dual as { IPv6Address: string };
  t.regex(web.IPv6Address, /^fd[0-9a-f]{2}:[0-9a-f]{4}::2$/);
  t.is((await d.tsnet('exec', 'client', '--', 'dig', '+short', 'web', 'AAAA')).trim(), web.IPv6Address);
  t.regex(await d.tsnet('exec', 'client', '--', 'ping', '-6', '-c', '1', '-W', '2', web.IPv6Address), /1 received/);
  t.deepEqual(JSON.parse(await d.tsnet('network', 'inspect', 'dual'))[0].IPAM.Config.map((c: { Subnet: string }) => c.Subnet)[1], v6);
});

test.serial('IPv6 link-local addresses only where a network has IPv6: none on an IPv4 sandbox\'s eth0 or on any bridge port (their multicast reached every sandbox)', async (t) => {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  const v6 = `fd${d.tag.slice(0, 2)}:1${d.tag.slice(3)}::/64`;
  await d.tsnet('network', 'create', '--subnet', d.subnet(), 'four');
  await d.tsnet('network', 'create', '--subnet', d.subnet(), '--subnet', v6, 'dual');
  await d.tsnet('sandbox', 'create', '--name', 'v4', '--network', 'four');
  await d.tsnet('sandbox', 'create', '--name', 'v6', '--network', 'dual');
  const addrs6 = async (sandbox: string): Promise<string[]> => {
    const links = JSON.parse(await d.tsnet('exec', sandbox, '--', 'ip', '-6', '-j', 'addr', 'show', 'dev', 'eth0')) as { addr_info: { local: string }[] }[];
    return links.flatMap((l) => l.addr_info.map((a) => a.local));
  };
  t.deepEqual(await addrs6('v4'), []);
  const dual = await addrs6('v6');
  t.true(dual.some((a) => a.startsWith('fe80:')), `link-local on the dual-stack sandbox: ${dual.join(', ')}`);
  t.true(dual.some((a) => a.startsWith('fd')), `its IPv6 address: ${dual.join(', ')}`);
  for (const net of ['four', 'dual']) {
    const bridge = await bridgeOf(d, net);
    const ports = JSON.parse((await run('ip', ['-j', 'addr', 'show', 'master', bridge])).stdout) as { ifname: string; addr_info?: { family: string }[] }[];
    t.is(ports.length, 1, `${bridge} has its sandbox's port`);
    t.deepEqual(ports.filter((p) => (p.addr_info ?? []).some((a) => a.family === 'inet6')).map((p) => p.ifname), [], `ports of ${bridge} with IPv6 addresses`);
  }
});

test.serial('a bridge keeps a MAC of its own: none of its ports\' and the same when a sandbox leaves (so the others\' ARP entries for the gateway stay right)', async (t) => {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  await webAndClientOnApp(d);
  const bridge = await bridgeOf(d, 'app');
  const mac = async (args: string[]): Promise<string[]> => (JSON.parse((await run('ip', ['-j', 'link', 'show', ...args])).stdout) as { address: string }[]).map((l) => l.address);
  const [own] = await mac(['dev', bridge]);
  const ports = await mac(['master', bridge]);
  t.is(ports.length, 2);
  t.false(ports.includes(own!), `bridge ${own} is none of its ports ${ports.join(' ')}`);
  for (const sb of ['web', 'client']) {
    await d.tsnet('sandbox', 'rm', sb);
    t.deepEqual(await mac(['dev', bridge]), [own]);
  }
});

test.serial('egress leaves masqueraded: the outside world (a namespace on a veth to the host) sees the host\'s address', async (t) => {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  const { name: outside, hostIp, outIp } = await outsideWorld(t, d.tag);
  await startWhoami(t, outside, outIp);
  await d.tsnet('network', 'create', '--subnet', d.subnet(), 'app');
  await d.tsnet('sandbox', 'create', '--name', 'client', '--network', 'app');
  t.is((await d.tsnet('exec', 'client', '--', 'dig', `@${outIp}`, '+short', '+tries=1', 'who.example')).trim(), hostIp);
});
