import test from 'ava';
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { call, ControlError } from '../src/control/client.js';
import { sandboxName } from '../src/cni/commands.js';
import type { CniErrorResult, CniResult } from '../src/cni/types.js';
import { systemTool } from '../src/net/tools.js';
import { startDaemon, type TestDaemon } from './helpers/daemon.js';
import { testNetns } from './helpers/netns.js';
import { startUpstream } from './helpers/upstream.js';

const run = promisify(execFile);
const PLUGIN = new URL('../bin/tsnet-cni', import.meta.url).pathname;

/** An exit code, stdout parsed (undefined when empty), stderr. */
type Invoked = { exit: number; out: unknown; stderr: string };

/** Runs tsnet-cni as a runtime does: CNI_* in the environment (only those), the configuration on stdin. */
function cni(env: Record<string, string>, stdin: string | object): Promise<Invoked> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [PLUGIN], { env: { PATH: process.env.PATH ?? '', CNI_PATH: '/opt/cni/bin', ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let [stdout, stderr] = ['', ''];
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (exit) => resolve({ exit: exit ?? -1, out: stdout.trim() === '' ? undefined : JSON.parse(stdout), stderr }));
    child.stdin.end(typeof stdin === 'string' ? stdin : JSON.stringify(stdin));
  });
}

/** A container as a runtime sees it: its id and the namespace it made for it. */
interface Container {
  id: string;
  netns: { name: string; path: string; exec(...cmd: string[]): Promise<string> };
}

const newContainer = async (t: Parameters<typeof testNetns>[0]): Promise<Container> => ({ id: randomBytes(32).toString('hex'), netns: await testNetns(t) });

const envOf = (command: string, c: Container, ifname = 'eth0', args = ''): Record<string, string> => ({
  CNI_COMMAND: command,
  CNI_CONTAINERID: c.id,
  CNI_NETNS: c.netns.path,
  CNI_IFNAME: ifname,
  CNI_ARGS: args,
});

/**
 * The README's example configuration, on the test daemon's socket. Its upstream (a documentation
 * address) is left out: what no tsnet name answers goes to the test's own upstream instead.
 */
function readmeConf(d: TestDaemon): Record<string, unknown> {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const conf = JSON.parse(/### As a CNI plugin[\s\S]*?```json\n([\s\S]*?)```/.exec(readme)![1]!) as Record<string, unknown> & { dns: Record<string, unknown> };
  const { nameservers: _nameservers, ...dns } = conf.dns;
  return { ...conf, socket: d.socket, dns };
}

const confOf = (d: TestDaemon, over: Record<string, unknown> = {}): Record<string, unknown> => ({ cniVersion: '1.0.0', name: 'app', type: 'tsnet-cni', socket: d.socket, ...over });

/** The result of an ADD that must succeed. */
async function added(env: Record<string, string>, conf: object): Promise<CniResult> {
  const r = await cni(env, conf);
  if (r.exit !== 0) throw new Error(`ADD exited ${r.exit}: ${JSON.stringify(r.out)} ${r.stderr}`);
  return r.out as CniResult;
}

/** An invocation that must fail: its error result, checked for the spec's shape. */
async function failed(env: Record<string, string>, conf: object | string): Promise<CniErrorResult> {
  const r = await cni(env, conf);
  if (r.exit === 0) throw new Error(`${env.CNI_COMMAND} succeeded: ${JSON.stringify(r.out)}`);
  const e = r.out as CniErrorResult;
  if (typeof e?.code !== 'number' || typeof e.msg !== 'string' || typeof e.cniVersion !== 'string') throw new Error(`not a CNI error result: ${JSON.stringify(r.out)}`);
  return e;
}

/** `dig @127.0.0.11 NAME +short` inside the namespace at `path`, entered as a runtime's tools would (nsenter --net). */
const digIn = async (path: string, name: string): Promise<string> =>
  (await run(systemTool('nsenter'), [`--net=${path}`, '--', 'dig', '@127.0.0.11', '+tries=1', '+time=3', '+short', name])).stdout.trim();

/** The interface `ifname` in the namespace at `path`, or undefined. */
async function linkIn(path: string, ifname: string): Promise<{ address: string; addr_info: { local: string; prefixlen: number }[]; flags: string[] } | undefined> {
  const r = await run(systemTool('nsenter'), [`--net=${path}`, '--', 'ip', '-j', 'addr', 'show', 'dev', ifname]).catch(() => undefined);
  return r === undefined ? undefined : JSON.parse(r.stdout)[0];
}

/** The status the daemon answers a POST with (200 for any success). */
const statusOf = (d: TestDaemon, path: string, body: object): Promise<number> => call(d.socket, 'POST', path, body).then(() => 200, (err: Error) => (err instanceof ControlError ? err.status : -1));

const cniSandboxes = async (d: TestDaemon): Promise<string[]> =>
  (await call<{ Name: string }[]>(d.socket, 'GET', '/sandboxes')).map((s) => s.Name).filter((n) => n.startsWith('cni-'));

test.serial("ADD puts a runtime's namespace on a tsnet network with a 1.0 result; two containers resolve each other at 127.0.0.11; CHECK passes; DEL removes it, keeps the namespace, and can be repeated", async (t) => {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  const subnet = d.subnet();
  await d.tsnet('network', 'create', '--subnet', subnet, 'app');
  const [web, client] = [await newContainer(t), await newContainer(t)];
  const conf = readmeConf(d);

  const res = await added(envOf('ADD', web, 'eth0', 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web'), conf);
  const prefix = subnet.replace(/\.0\/24$/, '.');
  const gateway = `${prefix}1`;
  t.is(res.cniVersion, '1.0.0');
  t.is(res.interfaces?.length, 2, 'the host end and the container interface');
  const [host, inside] = res.interfaces!;
  t.regex(host!.name, /^tsv/);
  t.is(host!.sandbox, undefined);
  t.deepEqual({ name: inside!.name, sandbox: inside!.sandbox }, { name: 'eth0', sandbox: web.netns.path });
  t.is(res.ips?.length, 1);
  const ip = res.ips![0]!;
  t.true(ip.address.startsWith(prefix) && ip.address.endsWith('/24'), ip.address);
  t.is(ip.gateway, gateway);
  t.is(ip.interface, 1, 'the address is on the container interface');
  t.false('version' in ip, '1.0.0 results carry no ips[].version');
  t.deepEqual(res.routes, [{ dst: '0.0.0.0/0', gw: gateway }]);
  t.deepEqual(res.dns, { nameservers: ['127.0.0.11'], search: ['svc.example'], options: ['ndots:1'] });

  const link = await linkIn(web.netns.path, 'eth0');
  t.truthy(link, 'eth0 is in the runtime namespace');
  t.is(link!.address, inside!.mac);
  t.deepEqual(link!.addr_info.map((a) => `${a.local}/${a.prefixlen}`), [ip.address]);
  t.true(link!.flags.includes('UP'));

  const res2 = await added(envOf('ADD', client, 'eth0', 'K8S_POD_NAME=client'), conf);
  const webIp = ip.address.split('/')[0]!;
  const clientIp = res2.ips![0]!.address.split('/')[0]!;
  t.not(webIp, clientIp);
  t.is(await digIn(client.netns.path, 'web'), webIp, 'the second container resolves the first by name');
  t.is(await digIn(web.netns.path, 'client'), clientIp, 'and the first the second');
  t.is(await digIn(web.netns.path, 'web'), webIp, 'a container resolves its own name');
  t.deepEqual((await digIn(web.netns.path, 'api')).split('\n').sort(), [clientIp, webIp].sort(), "the configuration's alias names both");
  await run(systemTool('nsenter'), [`--net=${client.netns.path}`, '--', 'ping', '-c', '1', '-W', '2', webIp]);

  const checked = await cni(envOf('CHECK', web), { ...conf, prevResult: res });
  t.is(checked.exit, 0, JSON.stringify(checked.out));
  t.is(checked.out, undefined, 'CHECK prints nothing when all is well');

  const again = await added(envOf('ADD', web, 'eth0', 'K8S_POD_NAME=web'), conf);
  t.deepEqual(again, res, 'the same ADD again answers the same result');

  const mount = `/run/netns/${d.netnsPrefix}${sandboxName(web.id)}`;
  t.true(existsSync(mount));
  const deleted = await cni(envOf('DEL', web), { ...conf, prevResult: res });
  t.is(deleted.exit, 0, JSON.stringify(deleted.out));
  t.is(deleted.out, undefined);
  t.true(existsSync(web.netns.path), "the runtime's namespace is still there");
  t.false(existsSync(mount), "tsnet's mount of it is gone");
  t.is(await linkIn(web.netns.path, 'eth0'), undefined, 'eth0 is gone from it');
  t.regex(await web.netns.exec('ip', 'link', 'show', 'lo'), /lo:/, 'its loopback lives on');
  t.is(await digIn(client.netns.path, 'web'), '', 'web no longer resolves');
  t.deepEqual(await cniSandboxes(d), [sandboxName(client.id)]);

  const twice = await cni(envOf('DEL', web), conf);
  t.is(twice.exit, 0, `a second DEL succeeds: ${JSON.stringify(twice.out)}`);
  const noNetns = await cni({ ...envOf('DEL', web), CNI_NETNS: '' }, conf);
  t.is(noNetns.exit, 0, 'so does one without CNI_NETNS');
  t.is((await failed(envOf('CHECK', web), conf)).code, 3, 'CHECK of a deleted container: unknown container');

  t.is((await cni(envOf('DEL', client), conf)).exit, 0);
  t.deepEqual(await cniSandboxes(d), []);
});

test.serial('CHECK passes across a daemon restart (11 while it is down), reports code 101 for an address, link or interface that is not as ADD left it, and 3 once the sandbox is gone; DEL still succeeds', async (t) => {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  await d.tsnet('network', 'create', '--subnet', d.subnet(), 'app');
  const c = await newContainer(t);
  const conf = confOf(d);
  const res = await added(envOf('ADD', c), conf);
  const address = res.ips![0]!.address;
  await d.kill9();
  const down = await failed(envOf('CHECK', c), { ...conf, prevResult: res });
  t.is(down.code, 11, `no daemon: try again later (${down.msg})`);
  await d.start();
  t.is((await cni(envOf('CHECK', c), { ...conf, prevResult: res })).exit, 0, 'the container is as ADD left it after a daemon restart');
  const nsIp = (...args: string[]) => run(systemTool('nsenter'), [`--net=${c.netns.path}`, '--', 'ip', ...args]);

  const wrong = { ...res, ips: [{ ...res.ips![0]!, address: '10.0.0.99/24' }] };
  const e1 = await failed(envOf('CHECK', c), { ...conf, prevResult: wrong });
  t.is(e1.code, 101);
  t.regex(e1.msg, /prevResult's addresses \(10\.0\.0\.99\/24\)/);

  await nsIp('link', 'set', 'dev', 'eth0', 'down');
  const e2 = await failed(envOf('CHECK', c), { ...conf, prevResult: res });
  t.is(e2.code, 101);
  t.regex(e2.msg, /interface eth0 is down/);
  await nsIp('link', 'set', 'dev', 'eth0', 'up');
  t.is((await cni(envOf('CHECK', c), { ...conf, prevResult: res })).exit, 0, 'up again, CHECK passes');

  await nsIp('addr', 'flush', 'dev', 'eth0');
  const e3 = await failed(envOf('CHECK', c), conf);
  t.is(e3.code, 101);
  t.true(e3.msg.includes(`lacks its address ${address}`), e3.msg);

  await nsIp('link', 'del', 'dev', 'eth0');
  const e4 = await failed(envOf('CHECK', c), conf);
  t.is(e4.code, 101);
  t.regex(e4.msg, /interface eth0 is gone/);

  const other = await newContainer(t);
  const e5 = await failed({ ...envOf('CHECK', c), CNI_NETNS: other.netns.path }, conf);
  t.is(e5.code, 101);
  t.regex(e5.msg, /not in CNI_NETNS/);

  await d.tsnet('sandbox', 'rm', sandboxName(c.id));
  const e6 = await failed(envOf('CHECK', c), conf);
  t.is(e6.code, 3);
  t.true(e6.msg.includes(c.id), 'the message names the container');
  t.is((await cni(envOf('DEL', c), conf)).exit, 0, 'DEL of a sandbox removed behind its back succeeds');
  t.true(existsSync(c.netns.path));
});

test.serial('a container on two networks: ADD with another CNI_IFNAME connects it (a 0.4.0 config gets a 0.4.0 result), DEL of one keeps the other', async (t) => {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  await d.tsnet('network', 'create', '--subnet', d.subnet(), 'app');
  await d.tsnet('network', 'create', '--subnet', d.subnet(), 'back');
  const c = await newContainer(t);
  const front = confOf(d);
  const back = confOf(d, { cniVersion: '0.4.0', name: 'backnet', network: 'back', runtimeConfig: { aliases: { backnet: ['db'] } } });
  await added(envOf('ADD', c, 'eth0'), front);
  const connect = { Container: sandboxName(c.id), EndpointConfig: { DriverOpts: { 'com.docker.network.endpoint.ifname': 'eth0' } } };
  t.is(await statusOf(d, '/networks/back/connect', connect), 400, "the daemon refuses an interface name another of the sandbox's networks has");
  const res = await added(envOf('ADD', c, 'net1'), back);
  t.is(res.cniVersion, '0.4.0');
  t.is(res.ips![0]!.version, '4', '0.4.0 results say the family');
  t.deepEqual(res.interfaces![1], { name: 'net1', mac: res.interfaces![1]!.mac, sandbox: c.netns.path });
  t.deepEqual(res.routes, [], 'the default route stays on the first network');
  t.truthy(await linkIn(c.netns.path, 'net1'));
  const peer = await newContainer(t);
  // runtimeConfig is the runtime's, per container: the peer's has no aliases.
  await added(envOf('ADD', peer, 'eth0'), { ...back, runtimeConfig: {} });
  t.is(await digIn(peer.netns.path, 'db'), res.ips![0]!.address.split('/')[0], 'the runtime alias resolves on that network');

  const clash = await failed(envOf('ADD', c, 'eth0'), back);
  t.is(clash.code, 100, 'the same container on the same network under another interface name is refused');
  t.regex(clash.msg, /already as interface net1/);

  t.is((await cni(envOf('DEL', c, 'net1'), back)).exit, 0);
  t.is(await linkIn(c.netns.path, 'net1'), undefined);
  t.truthy(await linkIn(c.netns.path, 'eth0'), 'the other network stays');
  t.is((await cni(envOf('CHECK', c, 'eth0'), front)).exit, 0);
  t.is((await cni(envOf('DEL', c, 'eth0'), front)).exit, 0);
  t.deepEqual(await cniSandboxes(d), [sandboxName(peer.id)]);

  // As containerd's go-cni does: both networks at once, then both away at once.
  const both = await newContainer(t);
  const adds = await Promise.all([cni(envOf('ADD', both, 'eth0'), front), cni(envOf('ADD', both, 'net1'), { ...back, runtimeConfig: {} })]);
  t.deepEqual(adds.map((r) => r.exit), [0, 0], JSON.stringify(adds.map((r) => r.out)));
  t.truthy(await linkIn(both.netns.path, 'eth0'));
  t.truthy(await linkIn(both.netns.path, 'net1'));
  const dels = await Promise.all([cni(envOf('DEL', both, 'eth0'), front), cni(envOf('DEL', both, 'net1'), back)]);
  t.deepEqual(dels.map((r) => r.exit), [0, 0], JSON.stringify(dels.map((r) => r.out)));
  t.deepEqual(await cniSandboxes(d), [sandboxName(peer.id)], 'the sandbox went with its last network');
});

test.serial('bad configuration, missing or bad environment, an unknown network, an address the daemon refuses and no daemon give the spec codes and change nothing', async (t) => {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  await d.tsnet('network', 'create', '--subnet', d.subnet(), 'app');
  const c = await newContainer(t);
  const conf = confOf(d);
  const add = envOf('ADD', c);
  const cases: [string, Record<string, string>, object | string, number, RegExp][] = [
    ['not JSON', add, '{"cniVersion":', 6, /not JSON/],
    ['a JSON list', add, '[]', 6, /not a JSON object/],
    ['no cniVersion', add, { name: 'app', type: 'tsnet-cni' }, 7, /cniVersion is required/],
    ['a version it does not speak', add, { ...conf, cniVersion: '2.0.0' }, 1, /cniVersion "2\.0\.0"/],
    ['no name', add, { ...conf, name: undefined }, 7, /name is required/],
    ['an ipam section', add, { ...conf, ipam: { type: 'host-local' } }, 2, /ipam is not supported/],
    ['a bad alias', add, { ...conf, aliases: ['no spaces'] }, 7, /aliases\[0\]: "no spaces"/],
    ['a bad upstream', add, { ...conf, dns: { nameservers: ['dns.example'] } }, 7, /dns\.nameservers\[0\]/],
    ['a relative socket', add, { ...conf, socket: 'tsnet.sock' }, 7, /socket "tsnet\.sock" is not an absolute path/],
    ['an unknown network', add, { ...conf, network: 'nosuch' }, 7, /network nosuch not found/],
    ['an address outside the subnet', add, { ...conf, runtimeConfig: { ips: ['192.0.2.5/24'] } }, 7, /the tsnet daemon answered 400: .*192\.0\.2\.5/],
    ['no daemon', add, { ...conf, socket: `${d.socket}.none` }, 11, /cannot reach the tsnet daemon/],
    ['no CNI_COMMAND', { ...add, CNI_COMMAND: '' }, conf, 4, /CNI_COMMAND is not set/],
    ['an unknown CNI_COMMAND', { ...add, CNI_COMMAND: 'GC' }, conf, 4, /CNI_COMMAND "GC"/],
    ['no CNI_CONTAINERID', { ...add, CNI_CONTAINERID: '' }, conf, 4, /CNI_CONTAINERID is not set/],
    ['a bad CNI_CONTAINERID', { ...add, CNI_CONTAINERID: '../x' }, conf, 4, /CNI_CONTAINERID "\.\.\/x" is not a container id/],
    ['no CNI_NETNS', { ...add, CNI_NETNS: '' }, conf, 4, /CNI_NETNS is not set/],
    ['a CNI_NETNS that is no namespace', { ...add, CNI_NETNS: '/etc/hostname' }, conf, 4, /CNI_NETNS "\/etc\/hostname" is not a namespace/],
    ['a missing CNI_NETNS', { ...add, CNI_NETNS: '/run/netns/tsnet-no-such' }, conf, 4, /does not exist/],
    ['no CNI_IFNAME', { ...add, CNI_IFNAME: '' }, conf, 4, /CNI_IFNAME is not set/],
    ['a CNI_IFNAME too long', { ...add, CNI_IFNAME: 'a-very-long-ifname' }, conf, 4, /CNI_IFNAME "a-very-long-ifname" is not an interface name/],
    ['bad CNI_ARGS', { ...add, CNI_ARGS: 'K8S_POD_NAME' }, conf, 4, /CNI_ARGS: "K8S_POD_NAME" is not KEY=VALUE/],
    ['CHECK in 0.3.1', envOf('CHECK', c), { ...conf, cniVersion: '0.3.1' }, 1, /CHECK is not in cniVersion 0\.3\.1/],
  ];
  for (const [what, env, stdin, code, msg] of cases) {
    const e = await failed(env, stdin);
    t.is(e.code, code, `${what}: ${e.msg}`);
    t.regex(e.msg, msg, what);
  }
  // The daemon's own checks of a chosen interface name, refused before anything is made.
  for (const ifname of ['lo', 'x'.repeat(16), 'a b']) t.is(await statusOf(d, '/sandboxes/create', { name: 'iftest', netns: c.netns.path, networks: [{ network: 'app', ifname }] }), 400, ifname);
  t.false((await call<{ Name: string }[]>(d.socket, 'GET', '/sandboxes')).some((sb) => sb.Name === 'iftest'));
  t.deepEqual(await cniSandboxes(d), [], 'no sandbox was made');
  t.deepEqual((await c.netns.exec('ip', '-o', 'link', 'show')).trim().split('\n').map((l) => l.split(':')[1]!.trim()), ['lo'], 'the namespace has only its loopback');
  t.deepEqual(await cni({ CNI_COMMAND: 'DEL', CNI_CONTAINERID: c.id, CNI_IFNAME: 'eth0' }, { ...conf, network: 'nosuch' }).then((r) => r.exit), 0, 'DEL of what never was succeeds');

  const version = await cni({ CNI_COMMAND: 'VERSION' }, { cniVersion: '1.0.0' });
  t.is(version.exit, 0);
  t.deepEqual(version.out, { cniVersion: '1.0.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0'] });
});
