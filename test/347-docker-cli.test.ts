import test, { type ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startDaemon, type TestDaemon } from './helpers/daemon.js';
import { startUpstream } from './helpers/upstream.js';

/**
 * Every `docker network` subcommand, run by the real docker CLI against the daemon's socket:
 * what it prints must be what it prints against dockerd's shapes (the Engine API reference).
 */

const run = promisify(execFile);

interface DockerCli {
  /** `docker -H unix://SOCKET ARGS`: its stdout; rejects on a non-zero exit. */
  docker(...args: string[]): Promise<string>;
  /** Runs it expecting a failure: exit code and stderr. */
  fails(...args: string[]): Promise<{ code: number; stderr: string }>;
  /** The names `docker network ls ARGS --format {{.Name}}` prints, in its order. */
  names(...args: string[]): Promise<string[]>;
  d: TestDaemon;
}

/** A daemon and the docker CLI pointed at it; a missing CLI fails the test (.ci/run installs docker.io). */
async function dockerCli(t: ExecutionContext): Promise<DockerCli> {
  const which = await run('sh', ['-c', 'command -v docker']).catch(() => null);
  if (which === null) throw new Error('no docker CLI on PATH (bash .ci/run installs docker.io)');
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  const docker = async (...args: string[]): Promise<string> => (await run('docker', ['-H', `unix://${d.socket}`, ...args], { timeout: 20_000 })).stdout;
  const fails = async (...args: string[]): Promise<{ code: number; stderr: string }> => {
    const e = await docker(...args).then(
      () => undefined,
      (err: { code: number; stderr: string }) => err,
    );
    if (e === undefined) throw new Error(`docker ${args.join(' ')} succeeded`);
    return { code: e.code, stderr: e.stderr };
  };
  const names = async (...args: string[]): Promise<string[]> => (await docker('network', 'ls', ...args, '--format', '{{.Name}}')).split('\n').filter(Boolean);
  return { docker, fails, names, d };
}

/** The ids docker prints are 64 hex; tables show their first 12. */
const ID = /^[0-9a-f]{64}$/;

/** A ULA /64 of this test's own, in canonical form (groups with no leading zero). */
const subnet6 = (d: TestDaemon): string => `fd00:1${d.tag.slice(0, 3)}:1${d.tag.slice(3)}::/64`;

/** `base` (a /24) with its last octet replaced: `at('10.1.2.0/24', 9)` is 10.1.2.9. */
const at = (base: string, n: number): string => base.replace(/\.0\/24$/, `.${n}`);

test.serial('create takes every flag, and ls and inspect print the network as dockerd would', async (t) => {
  const { docker, d } = await dockerCli(t);
  const v4 = d.subnet();
  const v6 = subnet6(d);
  const device = `tdk${d.tag}`;
  const gateway = at(v4, 1);
  const range = v4.replace(/\.0\/24$/, '.128/25');
  const created = await docker('network', 'create', '--subnet', v4, '--gateway', gateway, '--ip-range', range, '--ipv6', '--subnet', v6, '--internal',
    '-o', `com.docker.network.bridge.name=${device}`, '-o', 'com.docker.network.driver.mtu=1400', '--label', 'tier=web', '--label', 'bare', 'full');
  t.regex(created.trim(), ID);
  const id = created.trim();
  const [net] = JSON.parse(await docker('network', 'inspect', 'full'));
  t.like(net, {
    Name: 'full',
    Id: id,
    Scope: 'local',
    Driver: 'bridge',
    EnableIPv4: true,
    EnableIPv6: true,
    Internal: true,
    Attachable: false,
    Ingress: false,
    ConfigFrom: { Network: '' },
    ConfigOnly: false,
    Containers: {},
    Options: { 'com.docker.network.bridge.name': device, 'com.docker.network.driver.mtu': '1400' },
    Labels: { tier: 'web', bare: '' },
  });
  t.deepEqual(net.IPAM, { Driver: 'default', Options: {}, Config: [{ Subnet: v4, Gateway: gateway, IPRange: range }, { Subnet: v6, Gateway: v6.replace('::/64', '::1') }] });
  t.false(Number.isNaN(Date.parse(net.Created)), 'Created is a date');
  // The options are honoured, not only echoed.
  const [link] = JSON.parse((await run('ip', ['-j', 'link', 'show', 'dev', device])).stdout);
  t.is(link.mtu, 1400);

  t.deepEqual(JSON.parse(await docker('network', 'inspect', '--format', '{{json .IPAM.Config}}', 'full')), net.IPAM.Config);
  const both = (await docker('network', 'inspect', '--format', '{{.Name}} {{.Internal}} {{.EnableIPv6}}', 'full', 'bridge')).trim().split('\n');
  t.deepEqual(both, ['full true true', 'bridge false false']);

  const table = (await docker('network', 'ls')).trim().split('\n');
  t.regex(table[0]!, /^NETWORK ID\s+NAME\s+DRIVER\s+SCOPE$/);
  t.regex(table[1]!, /^[0-9a-f]{12}\s+bridge\s+bridge\s+local$/);
  t.regex(table[2]!, new RegExp(`^${id.slice(0, 12)}\\s+full\\s+bridge\\s+local$`));
  t.is(table.length, 3);
  t.is(await docker('network', 'ls', '--format', '{{.Name}} {{.Driver}} {{.IPv6}} {{.Internal}} {{.Label "tier"}}'), 'bridge bridge false false \nfull bridge true true web\n');
  const lines = (await docker('network', 'ls', '--format', 'json')).trim().split('\n').map((l) => JSON.parse(l));
  t.like(lines[1], { ID: id.slice(0, 12), Name: 'full', Driver: 'bridge', Scope: 'local', IPv4: 'true', IPv6: 'true', Internal: 'true' });
  t.deepEqual(lines[1].Labels.split(',').sort(), ['bare=', 'tier=web']);
  t.regex(lines[1].CreatedAt, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d/);
  const short = (await docker('network', 'ls', '-q')).trim().split('\n');
  t.is(short[1], id.slice(0, 12));
  t.true(short.every((s) => /^[0-9a-f]{12}$/.test(s)));
  t.is((await docker('network', 'ls', '-q', '--no-trunc')).trim().split('\n')[1], id);
  t.regex(await docker('network', 'ls', '--no-trunc'), new RegExp(`^${id}\\s+full\\s+bridge\\s+local$`, 'm'));
});

test.serial('ls --filter selects by name, id, driver, label, scope, type and dangling; a bad filter is refused', async (t) => {
  const { docker, fails, names, d } = await dockerCli(t);
  await docker('network', 'create', '--subnet', d.subnet(), '--label', 'tier=web', 'f-alpha');
  const beta = (await docker('network', 'create', '--subnet', d.subnet(), '--label', 'tier=db', '--label', 'env=prod', 'f-beta')).trim();
  await docker('network', 'create', '--subnet', d.subnet(), 'other');
  await d.tsnet('sandbox', 'create', '--name', 'user', '--network', 'f-beta');
  const cases: [string[], string[]][] = [
    [[], ['bridge', 'f-alpha', 'f-beta', 'other']],
    [['name=f-'], ['f-alpha', 'f-beta']],
    [['name=alpha', 'name=other'], ['f-alpha', 'other']],
    [['id=' + beta.slice(0, 7)], ['f-beta']],
    [['id=' + beta], ['f-beta']],
    [['driver=bridge'], ['bridge', 'f-alpha', 'f-beta', 'other']],
    [['driver=macvlan'], []],
    [['driver=bridg'], []],
    [['label=tier'], ['f-alpha', 'f-beta']],
    [['label=tier=db'], ['f-beta']],
    [['label=tier', 'label=env=prod'], ['f-beta']],
    [['label=tier=x'], []],
    [['scope=local'], ['bridge', 'f-alpha', 'f-beta', 'other']],
    [['scope=swarm'], []],
    [['type=builtin'], ['bridge']],
    [['type=custom'], ['f-alpha', 'f-beta', 'other']],
    [['type=custom', 'type=builtin'], ['bridge', 'f-alpha', 'f-beta', 'other']],
    [['dangling=true'], ['f-alpha', 'other']],
    [['dangling=1'], ['f-alpha', 'other']],
    [['dangling=false'], ['bridge', 'f-beta']],
    [['type=custom', 'label=tier'], ['f-alpha', 'f-beta']],
  ];
  for (const [filters, want] of cases) t.deepEqual(await names(...filters.flatMap((f) => ['--filter', f])), want, filters.join(' '));
  t.is(await docker('network', 'ls', '-q', '--filter', 'name=f-beta', '--no-trunc'), `${beta}\n`);
  for (const [filter, message] of [
    [['foo=bar'], "invalid filter 'foo'"],
    [['dangling=maybe'], 'invalid value for filter \'dangling\', must be "true" (or "1"), or "false" (or "0")'],
    [['dangling=true', 'dangling=false'], 'got more than one value for filter key "dangling"'],
    [['type=other'], "invalid filter 'type=other'"],
    [['until=1h'], "invalid filter 'until'"],
  ] as const) {
    const r = await fails('network', 'ls', ...filter.flatMap((f) => ['--filter', f]));
    t.is(r.code, 1, filter.join(' '));
    t.is(r.stderr.split('\n')[0], `Error response from daemon: ${message}`);
  }
});

test.serial('connect takes --alias, --ip and --ip6; inspect lists the container; disconnect and rm as dockerd', async (t) => {
  const { docker, fails, names, d } = await dockerCli(t);
  const v4 = d.subnet();
  const v6 = subnet6(d);
  const id = (await docker('network', 'create', '--subnet', v4, '--ip-range', v4.replace(/\.0\/24$/, '.128/25'), '--ipv6', '--subnet', v6, 'app')).trim();
  await docker('network', 'create', '--subnet', d.subnet(), 'spare');
  const box = (await d.tsnet('sandbox', 'create', '--name', 'box', '--network', 'bridge')).trim();
  const peer = (await d.tsnet('sandbox', 'create', '--name', 'peer', '--network', 'bridge')).trim();
  const ip6 = v6.replace('::/64', '::20');
  t.is(await docker('network', 'connect', '--alias', 'x1', '--alias', 'x2', '--ip', at(v4, 200), '--ip6', ip6, 'app', 'box'), '');
  await docker('network', 'connect', 'app', 'peer');
  const containers = JSON.parse(await docker('network', 'inspect', '--format', '{{json .Containers}}', 'app'));
  t.deepEqual(Object.keys(containers).sort(), [box, peer].sort());
  t.like(containers[box], { Name: 'box', IPv4Address: `${at(v4, 200)}/24`, IPv6Address: `${ip6}/64` });
  t.regex(containers[box].EndpointID, ID);
  // The MAC shown is the interface's own: 02:42 and the IPv4 address's bytes.
  const mac = `02:42:${at(v4, 200).split('.').map((b) => Number(b).toString(16).padStart(2, '0')).join(':')}`;
  t.is(containers[box].MacAddress, mac);
  t.is(JSON.parse(await d.tsnet('exec', 'box', '--', 'ip', '-j', 'link', 'show', 'eth1'))[0].address, mac);
  // Without --ip the address comes from the --ip-range, its first host.
  t.like(containers[peer], { Name: 'peer', IPv4Address: `${at(v4, 128)}/24` });
  t.regex(containers[peer].IPv6Address, /\/64$/);
  for (const name of ['x1', 'x2', 'box']) t.is((await d.tsnet('exec', 'peer', '--', 'dig', '+short', name)).trim(), at(v4, 200), name);
  t.deepEqual(await names('--filter', 'dangling=true'), ['spare']);

  // Refused, each with dockerd's status and a message; nothing changes.
  const before = await docker('network', 'inspect', 'app');
  for (const [args, message] of [
    [['app', 'box'], 'sandbox box is already connected to network app'],
    [['app', 'nobody'], 'sandbox nobody not found'],
    [['nonet', 'box'], 'network nonet not found'],
    [['--ip', at(v4, 200), 'spare', 'box'], `address ${at(v4, 200)} is outside spare's subnet`],
    [['--link', 'peer:p', 'spare', 'box'], 'EndpointConfig.Links: --link on connect is not supported'],
  ] as const) {
    const r = await fails('network', 'connect', ...args);
    t.is(r.code, 1);
    t.true(r.stderr.startsWith(`Error response from daemon: ${message}`), r.stderr);
  }
  const rm = await fails('network', 'rm', 'app');
  t.true(rm.stderr.startsWith(`Error response from daemon: error while removing network: network app id ${id} has active endpoints (box, peer)`), rm.stderr);
  t.is(await docker('network', 'inspect', 'app'), before);
  t.deepEqual(JSON.parse(await d.tsnet('sandbox', 'inspect', 'box'))[0].Networks.app.Aliases, ['x1', 'x2']);

  t.is(await docker('network', 'disconnect', 'app', 'box'), '');
  t.is(await docker('network', 'disconnect', '-f', 'app', 'peer'), '');
  t.deepEqual(JSON.parse(await docker('network', 'inspect', '--format', '{{json .Containers}}', 'app')), {});
  t.true((await fails('network', 'disconnect', 'app', 'box')).stderr.startsWith('Error response from daemon: sandbox box is not connected to network app'));
  t.true((await fails('network', 'disconnect', 'nonet', 'box')).stderr.startsWith('Error response from daemon: network nonet not found'));

  // Several at once: each that goes is printed, the unknown one is an error and the exit is 1.
  const several = await run('docker', ['-H', `unix://${d.socket}`, 'network', 'rm', 'app', 'nonet', 'spare']).catch((e: { code: number; stdout: string; stderr: string }) => e);
  t.like(several, { code: 1, stdout: 'app\nspare\n' });
  t.regex(several.stderr, /^Error response from daemon: network nonet not found$/m);
  t.is(await docker('network', 'rm', '-f', 'nonet'), '');
  t.true((await fails('network', 'rm', 'bridge')).stderr.startsWith('Error response from daemon: bridge is a pre-defined network and cannot be removed'));
  const missing = await fails('network', 'inspect', 'app');
  t.is(missing.code, 1);
  t.true(missing.stderr.startsWith('Error response from daemon: network app not found'));
  t.deepEqual(await names(), ['bridge']);
});

test.serial('prune -f removes the unused custom networks its filters (label, label!, until) keep, and prints them', async (t) => {
  const { docker, fails, names, d } = await dockerCli(t);
  await docker('network', 'create', '--subnet', d.subnet(), '--label', 'keep=yes', 'p1');
  await docker('network', 'create', '--subnet', d.subnet(), '--label', 'env=test', 'p2');
  await docker('network', 'create', '--subnet', d.subnet(), '--label', 'env=test', 'p3');
  await d.tsnet('sandbox', 'create', '--name', 'user', '--network', 'p3');
  const all = ['bridge', 'p1', 'p2', 'p3'];
  for (const [filter, message] of [
    ['foo=1', "invalid filter 'foo'"],
    ['name=p1', "invalid filter 'name'"],
    ['until=soon', "invalid filter 'until=soon'"],
  ]) {
    const r = await fails('network', 'prune', '-f', '--filter', filter!);
    t.true(r.stderr.startsWith(`Error response from daemon: ${message}`), r.stderr);
  }
  t.deepEqual(await names(), all, 'a refused prune removes nothing');
  t.is(await docker('network', 'prune', '-f', '--filter', 'until=1h'), '', 'all were made within the hour');
  t.is(await docker('network', 'prune', '-f', '--filter', 'until=2000-01-01T00:00:00Z'), '');
  t.is(await docker('network', 'prune', '-f', '--filter', 'label!=keep=yes', '--filter', 'label=keep'), '');
  t.is(await docker('network', 'prune', '-f', '--filter', 'label=env=test'), 'Deleted Networks:\np2\n\n', 'p3 is in use');
  t.deepEqual(await names(), ['bridge', 'p1', 'p3']);
  t.is(await docker('network', 'prune', '-f', '--filter', `until=${Math.ceil(Date.now() / 1000) + 60}`), 'Deleted Networks:\np1\n\n');
  t.is(await docker('network', 'prune', '-f'), '');
  await d.tsnet('sandbox', 'rm', 'user');
  t.is(await docker('network', 'prune', '-f'), 'Deleted Networks:\np3\n\n');
  t.deepEqual(await names(), ['bridge']);
});

test.serial('create refuses what it cannot honour, with a message and no change', async (t) => {
  const { docker, fails, names, d } = await dockerCli(t);
  const taken = d.subnet();
  await docker('network', 'create', '--subnet', taken, 'taken');
  const s = d.subnet();
  const device = `tdx${d.tag}`;
  for (const [args, message] of [
    [['--ipv6'], 'EnableIPv6: tsnet has no default IPv6 pool'],
    [['--subnet', s, '--aux-address', `host=${at(s, 5)}`], 'IPAM.Config[0].AuxiliaryAddresses: --aux-address is not supported'],
    [['--ipam-driver', 'other'], 'IPAM.Driver: "other" is not supported'],
    [['--config-only'], 'ConfigOnly: --config-only networks are not supported'],
    [['-d', 'nosuch'], 'driver "nosuch" is not supported'],
    [['--subnet', `${at(s, 1)}/24`], `subnet ${at(s, 1)}/24 has host bits set`],
    [['--subnet', s, '--subnet', d.subnet()], 'IPAM.Config: at most one IPv4 and one IPv6 subnet'],
    [['--subnet', s, '--gateway', at(s, 255)], `gateway ${at(s, 255)} is the broadcast address of ${s}`],
    // (One wholly outside the subnet the CLI refuses itself.)
    [['--subnet', s, '--ip-range', s.replace('/24', '/16')], `ip-range ${s.replace('/24', '/16')} is outside subnet ${s}`],
    [['--subnet', taken], `subnet ${taken} overlaps network taken`],
    [['--subnet', s, '-o', `com.docker.network.bridge.name=${device}`, '-o', 'com.docker.network.driver.mtu=12'], 'com.docker.network.driver.mtu: "12" is not a decimal integer from 576 to 65535'],
    [['--subnet', s, '-o', 'com.docker.network.bridge.name=lo'], 'bridge name lo is an existing interface'],
  ] as const) {
    const r = await fails('network', 'create', ...args, 'bad');
    t.is(r.code, 1, args.join(' '));
    t.true(r.stderr.startsWith(`Error response from daemon: ${message}`), r.stderr);
  }
  const dup = await fails('network', 'create', '--subnet', s, 'taken');
  t.true(dup.stderr.startsWith('Error response from daemon: network with name taken already exists'), dup.stderr);
  t.deepEqual(await names(), ['bridge', 'taken']);
  await t.throwsAsync(run('ip', ['link', 'show', 'dev', device]));
});
