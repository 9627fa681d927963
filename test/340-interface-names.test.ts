import test, { type ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { call, ControlError } from '../src/control/client.js';
import { systemTool } from '../src/net/tools.js';
import { startDaemon, type TestDaemon } from './helpers/daemon.js';
import { startUpstream } from './helpers/upstream.js';

const run = promisify(execFile);

/** Status and message of POST /networks/create with `body`. */
const create = (d: TestDaemon, body: Record<string, unknown>): Promise<{ status: number; message: string }> =>
  call<{ Id: string }>(d.socket, 'POST', '/networks/create', body).then(
    () => ({ status: 201, message: '' }),
    (err: Error) => ({ status: err instanceof ControlError ? err.status : -1, message: err.message }),
  );

/** An interface as the kernel shows it: its addresses (not their DAD state), up or down, its master and alias. */
const snapshot = async (dev: string): Promise<string> => {
  const [link] = JSON.parse((await run('ip', ['-j', '-d', 'addr', 'show', 'dev', dev])).stdout) as { ifname: string; flags: string[]; master?: string; ifalias?: string; addr_info: { local: string; prefixlen: number }[] }[];
  return JSON.stringify([link!.ifname, link!.flags.includes('UP'), link!.master, link!.ifalias, link!.addr_info.map((a) => `${a.local}/${a.prefixlen}`)]);
};

/** A veth pair in the host namespace that tsnet did not make, removed when the test ends. */
async function hostVeth(t: ExecutionContext, tag: string): Promise<string> {
  const veth = `tsq${tag}`;
  await run('ip', ['link', 'add', veth, 'type', 'veth', 'peer', 'name', `${veth}p`]);
  t.teardown(() => run('ip', ['link', 'del', veth]).catch(() => {}));
  return veth;
}

test.serial('a bridge name that is an existing interface (lo, a veth, the default bridge) or not an interface name is refused with 400 and nothing changes', async (t) => {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  const veth = await hostVeth(t, d.tag);
  await run('ip', ['addr', 'add', '10.99.99.1/30', 'dev', veth]);
  const foreign = ['lo', veth, `tst${d.tag}`];
  const before = await Promise.all(foreign.map(snapshot));
  const rulesBefore = (await run(systemTool('nft'), ['list', 'table', 'inet', `tsnet_t${d.tag}`])).stdout;
  for (const name of foreign) {
    const r = await create(d, { Name: `n-${name}`, IPAM: { Config: [{ Subnet: d.subnet() }] }, Options: { 'com.docker.network.bridge.name': name } });
    t.deepEqual(r, { status: 400, message: `bridge name ${name} is an existing interface: pick a name no interface has` }, name);
  }
  for (const name of ['ts*', 'x"y', 'a b', 'abcdefghijklmnop', '..', 'eth0\n']) {
    const r = await create(d, { Name: 'bad', IPAM: { Config: [{ Subnet: d.subnet() }] }, Options: { 'com.docker.network.bridge.name': name } });
    t.is(r.status, 400, name);
    t.regex(r.message, /^bridge name .* is not an interface name/, name);
  }
  t.deepEqual(await Promise.all(foreign.map(snapshot)), before, 'lo, the veth and the default bridge are as they were');
  t.is((await run(systemTool('nft'), ['list', 'table', 'inet', `tsnet_t${d.tag}`])).stdout, rulesBefore, 'the ruleset is unchanged');
  t.deepEqual(JSON.parse(await d.tsnet('network', 'ls', '--format', 'json')).map((n: { Name: string }) => n.Name), ['bridge']);

  // A fresh name is made, and removed with its network; the veth stays.
  const own = `tsc${d.tag}`;
  t.is((await create(d, { Name: 'mine', IPAM: { Config: [{ Subnet: d.subnet() }] }, Options: { 'com.docker.network.bridge.name': own } })).status, 201);
  await run('ip', ['link', 'show', 'dev', own]);
  await d.tsnet('network', 'rm', 'mine');
  await t.throwsAsync(run('ip', ['link', 'show', 'dev', own]));
  t.deepEqual(await Promise.all(foreign.map(snapshot)), before);
});

test.serial('a macvlan parent must exist, not be loopback and not be a link tsnet made; an existing host interface is taken and left alone', async (t) => {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  const veth = await hostVeth(t, d.tag);
  await d.tsnet('network', 'create', '--subnet', d.subnet(), 'app');
  await d.tsnet('sandbox', 'create', '--name', 's', '--network', 'app');
  const hostIf = JSON.parse(await d.tsnet('sandbox', 'inspect', 's'))[0].Networks.app.HostInterface as string;
  const cases: [string, RegExp][] = [
    ['lo', /^parent lo is a loopback interface$/],
    [`nope${d.tag}`, /^parent interface nope\w+ does not exist$/],
    [`tst${d.tag}`, /is an interface tsnet made for another network or sandbox/],
    [hostIf, /is an interface tsnet made for another network or sandbox/],
    ['ts*', /is not an interface name/],
  ];
  for (const [parent, message] of cases) {
    const r = await create(d, { Name: 'lan', Driver: 'macvlan', IPAM: { Config: [{ Subnet: d.subnet() }] }, Options: { parent } });
    t.is(r.status, 400, parent);
    t.regex(r.message, message, parent);
  }
  t.is((await create(d, { Name: 'lan', Driver: 'macvlan', IPAM: { Config: [{ Subnet: d.subnet() }] }, Options: { parent: veth } })).status, 201);
  await d.tsnet('network', 'rm', 'lan');
  t.regex((await run('ip', ['link', 'show', 'dev', veth])).stdout, new RegExp(veth), 'the parent stays after network rm');
});
