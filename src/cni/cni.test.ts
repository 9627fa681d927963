import test from 'ava';
import { DEFAULT_SOCKET } from '../control/client.js';
import { NAME } from '../registry/validate.js';
import { sandboxName } from './commands.js';
import { parseConfig } from './config.js';
import type { NetworkView, SandboxView } from './daemon.js';
import { parseCniArgs, parseEnv } from './env.js';
import { Code, CniError } from './errors.js';
import { addResult, type Attached } from './result.js';

const base = { cniVersion: '1.0.0', name: 'app', type: 'tsnet-cni' };

/** The code and message of what `fn` throws (a CniError). */
function error(fn: () => unknown): { code: number; msg: string } {
  try {
    fn();
  } catch (err) {
    if (err instanceof CniError) return { code: err.code, msg: err.message };
    throw err;
  }
  throw new Error('did not throw');
}

test('CNI_ARGS: pairs split on ";", a value may hold "=", an empty list is none, a word without "=" is code 4', (t) => {
  t.deepEqual([...parseCniArgs('IgnoreUnknown=1;K8S_POD_NAME=web;X=a=b;')], [['IgnoreUnknown', '1'], ['K8S_POD_NAME', 'web'], ['X', 'a=b']]);
  t.is(parseCniArgs('').size, 0);
  t.is(error(() => parseCniArgs('K8S_POD_NAME')).code, Code.invalidEnv);
  t.is(error(() => parseCniArgs('=v')).code, Code.invalidEnv);
});

test('the environment: VERSION needs nothing else; DEL needs no CNI_NETNS and does not check it; lo is no CNI_IFNAME', (t) => {
  t.is(parseEnv({ CNI_COMMAND: 'VERSION' }).command, 'VERSION');
  const del = parseEnv({ CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'c1', CNI_IFNAME: 'eth0' });
  t.is(del.netns, undefined);
  t.is(parseEnv({ CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'c1', CNI_IFNAME: 'eth0', CNI_NETNS: '/gone' }).netns, '/gone', "a namespace the runtime lost already is no DEL's error");
  t.deepEqual(error(() => parseEnv({ CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_IFNAME: 'lo', CNI_NETNS: '/proc/self/ns/net' })), { code: Code.invalidEnv, msg: "CNI_IFNAME lo is the container's loopback" });
  t.is(error(() => parseEnv({ CNI_COMMAND: 'CHECK', CNI_CONTAINERID: 'c1', CNI_IFNAME: 'eth0' })).code, Code.invalidEnv);
});

test('a configuration: the network defaults to the name, the socket to the daemon default; aliases merge with the runtime ones for this network', (t) => {
  const conf = parseConfig({ ...base, aliases: ['www'], runtimeConfig: { aliases: { app: ['www', 'api'], other: ['no'] }, ips: ['10.1.2.3/24', 'fd00::3/64'] } }, 'ADD');
  t.is(conf.network, 'app');
  t.is(conf.socket, DEFAULT_SOCKET);
  t.deepEqual(conf.aliases, ['www', 'api']);
  t.is(conf.ip, '10.1.2.3');
  t.is(conf.ip6, 'fd00::3');
  const dns = parseConfig({ ...base, network: 'back', dns: { nameservers: ['192.0.2.53'], search: ['a.test'], domain: 'a.test' }, runtimeConfig: { dns: { servers: ['192.0.2.54'], searches: ['b.test'], options: ['ndots:2'] } } }, 'ADD');
  t.is(dns.network, 'back');
  t.deepEqual([dns.upstreams, dns.search, dns.options, dns.domain], [['192.0.2.53', '192.0.2.54'], ['a.test', 'b.test'], ['ndots:2'], 'a.test']);
});

test('configuration errors name the field: code 1 for a version, 2 for ipam, 7 for the rest', (t) => {
  t.is(error(() => parseConfig({ ...base, cniVersion: '1.1.0' }, 'ADD')).code, Code.incompatibleVersion);
  t.is(error(() => parseConfig({ ...base, cniVersion: '0.3.1' }, 'CHECK')).code, Code.incompatibleVersion);
  t.notThrows(() => parseConfig({ ...base, cniVersion: '0.3.1' }, 'ADD'));
  t.is(error(() => parseConfig({ ...base, ipam: {} }, 'ADD')).code, Code.unsupportedField);
  t.deepEqual(error(() => parseConfig({ ...base, runtimeConfig: { dns: { servers: ['x'] } } }, 'ADD')), { code: Code.invalidConfig, msg: 'network configuration: runtimeConfig.dns.servers[0]: "x" is not an IP address' });
  t.regex(error(() => parseConfig({ ...base, runtimeConfig: { ips: ['10.0.0.1/24', '10.0.0.2/24'] } }, 'ADD')).msg, /more than one IPv4/);
  t.regex(error(() => parseConfig({ ...base, name: '-x' }, 'ADD')).msg, /name "-x" is not a network name/);
  t.regex(error(() => parseConfig({ ...base, type: 7 }, 'ADD')).msg, /type: 7 is not a string/);
  t.regex(error(() => parseConfig({ ...base, prevResult: { ips: [{ address: 1 }] } }, 'ADD')).msg, /prevResult\.ips\[0\]\.address/);
});

test('sandbox names: one per container id, a valid tsnet name, readable, apart for ids that share a beginning', (t) => {
  const id = 'a'.repeat(64);
  t.is(sandboxName(id), sandboxName(id));
  t.regex(sandboxName(id), /^cni-aaaaaaaaaaaa-[0-9a-f]{8}$/);
  t.true(NAME.test(sandboxName(id)));
  t.not(sandboxName(id), sandboxName(`${'a'.repeat(63)}b`));
  t.true(NAME.test(sandboxName('x')));
});

const sandbox: SandboxView = {
  Id: 'sb1',
  Name: 'cni-x',
  NetnsName: 'tsnet-cni-x',
  Networks: { app: { IPv4Address: '10.1.0.2', IPv6Address: 'fd00::2', Aliases: [], Interface: 'eth0', HostInterface: 'tsv1' } },
  DnsSearch: ['a.test'],
  DnsOptions: [],
};
const network: NetworkView = {
  Name: 'app',
  Id: 'n1',
  IPAM: { Config: [{ Subnet: '10.1.0.0/24', Gateway: '10.1.0.1' }, { Subnet: 'fd00::/64', Gateway: 'fd00::1' }] },
  Containers: { sb1: { IPv4Address: '10.1.0.2/24', IPv6Address: 'fd00::2/64' } },
};
const attached: Attached = {
  sandbox,
  network,
  ifname: 'eth0',
  netnsPath: '/var/run/netns/blue',
  inside: { mac: '02:00:00:00:00:02', up: true, addresses: [], routes: [{ dst: '0.0.0.0/0', gw: '10.1.0.1' }] },
  host: { name: 'tsv1', mac: '02:00:00:00:00:01' },
};

test('an ADD result: both families with their gateways on the container interface, 127.0.0.11 the one nameserver', (t) => {
  const r = addResult(parseConfig(base, 'ADD'), attached);
  t.deepEqual(r, {
    cniVersion: '1.0.0',
    interfaces: [{ name: 'tsv1', mac: '02:00:00:00:00:01' }, { name: 'eth0', mac: '02:00:00:00:00:02', sandbox: '/var/run/netns/blue' }],
    ips: [{ address: '10.1.0.2/24', gateway: '10.1.0.1', interface: 1 }, { address: 'fd00::2/64', gateway: 'fd00::1', interface: 1 }],
    routes: [{ dst: '0.0.0.0/0', gw: '10.1.0.1' }],
    dns: { nameservers: ['127.0.0.11'], search: ['a.test'], options: [] },
  });
});

test("after a previous plugin's result, its interfaces, addresses and routes come first and the indexes follow; a 0.4.0 result names each address's family", (t) => {
  const prevResult = { interfaces: [{ name: 'dummy0' }], ips: [{ address: '192.0.2.9/32', interface: 0 }], routes: [{ dst: '192.0.2.0/24' }], dns: { nameservers: ['192.0.2.53'] } };
  const r = addResult(parseConfig({ ...base, cniVersion: '0.4.0', prevResult }, 'ADD'), attached);
  t.deepEqual(r.interfaces?.map((i) => i.name), ['dummy0', 'tsv1', 'eth0']);
  t.deepEqual(r.ips, [
    { address: '192.0.2.9/32', interface: 0, version: '4' },
    { address: '10.1.0.2/24', gateway: '10.1.0.1', interface: 2, version: '4' },
    { address: 'fd00::2/64', gateway: 'fd00::1', interface: 2, version: '6' },
  ]);
  t.deepEqual(r.routes, [{ dst: '192.0.2.0/24' }, { dst: '0.0.0.0/0', gw: '10.1.0.1' }]);
  t.deepEqual(r.dns?.nameservers, ['127.0.0.11'], "the container asks tsnet's resolver, which forwards the rest");
});
