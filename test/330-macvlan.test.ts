import test, { type ExecutionContext } from 'ava';
import { execFile, execFileSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { promisify } from 'node:util';
import { hostPings, pings, startDaemon, type TestDaemon } from './helpers/daemon.js';
import { owned } from './helpers/ledger.js';
import { testNetns } from './helpers/netns.js';
import { startUpstream } from './helpers/upstream.js';

const run = promisify(execFile);

/** Whether this kernel can make 802.1q sub-interfaces (some build it out): probed in a throwaway namespace. */
function kernelHasVlan(): boolean {
  const ns = `tsnet-vlanprobe-${process.pid}`;
  owned('the VLAN probe', ns);
  try {
    execFileSync('ip', ['netns', 'add', ns]);
    execFileSync('ip', ['-n', ns, 'link', 'add', 'p0', 'type', 'veth', 'peer', 'name', 'p1']);
    execFileSync('ip', ['-n', ns, 'link', 'add', 'link', 'p0', 'name', 'p0.7', 'type', 'vlan', 'id', '7'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  } finally {
    execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  }
}

/** A segment: a namespace at the far end of a veth whose host end is the macvlan parent. */
async function segment(t: ExecutionContext, d: TestDaemon): Promise<{ parent: string; ns: string; octets: string }> {
  const ns = await testNetns(t);
  const parent = `tsp${d.tag}`;
  await run('ip', ['link', 'add', parent, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns.name]);
  t.teardown(() => run('ip', ['link', 'del', parent]).catch(() => {}));
  await run('ip', ['link', 'set', parent, 'up']);
  await run('ip', ['-n', ns.name, 'link', 'set', 'eth0', 'up']);
  return { parent, ns: ns.name, octets: `10.${randomInt(100, 250)}.${randomInt(0, 255)}` };
}


test.serial('macvlan sandboxes on a veth parent reach a namespace on the segment and resolve each other by name', async (t) => {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  const seg = await segment(t, d);
  await run('ip', ['-n', seg.ns, 'addr', 'add', `${seg.octets}.1/24`, 'dev', 'eth0']);
  await d.tsnet('network', 'create', '-d', 'macvlan', '--subnet', `${seg.octets}.0/24`, '--gateway', `${seg.octets}.1`, '-o', `parent=${seg.parent}`, 'lan');
  await d.tsnet('sandbox', 'create', '--name', 'm1', '--network', 'lan');
  await d.tsnet('sandbox', 'create', '--name', 'm2', '--network', 'lan');
  t.true(await pings(d, 'm1', `${seg.octets}.1`, 2), 'the segment is reachable');
  const m2 = JSON.parse(await d.tsnet('sandbox', 'inspect', 'm2'))[0].Networks.lan.IPv4Address as string;
  t.is((await d.tsnet('exec', 'm1', '--', 'dig', '+short', 'm2')).trim(), m2);
  t.true(await pings(d, 'm1', 'm2', 2), 'macvlan siblings reach each other (bridge mode)');
  t.regex(await d.tsnet('exec', 'm1', '--', 'ip', '-d', 'link', 'show', 'eth0'), /macvlan mode bridge/);
  // Without a shim the host cannot reach its sandboxes, even with an address on the parent: the
  // kernel does not pass a parent's own traffic to its macvlans. The control: the segment, from the host.
  await run('ip', ['addr', 'add', `${seg.octets}.254/24`, 'dev', seg.parent]);
  const m1 = JSON.parse(await d.tsnet('sandbox', 'inspect', 'm1'))[0].Networks.lan.IPv4Address as string;
  t.true(await hostPings(`${seg.octets}.1`), 'control: the host reaches the segment through the parent');
  t.false(await hostPings(m1), 'the host reached a macvlan sandbox without a shim');
});

(kernelHasVlan() ? test.serial : test.serial.skip)('parent=IFACE.VLAN makes the 802.1q sub-interface, tags traffic, and removes it with the network', async (t) => {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  const seg = await segment(t, d);
  await run('ip', ['-n', seg.ns, 'link', 'add', 'link', 'eth0', 'name', 'eth0.42', 'type', 'vlan', 'id', '42']);
  await run('ip', ['-n', seg.ns, 'addr', 'add', `${seg.octets}.1/24`, 'dev', 'eth0.42']);
  await run('ip', ['-n', seg.ns, 'link', 'set', 'eth0.42', 'up']);
  await d.tsnet('network', 'create', '-d', 'macvlan', '--subnet', `${seg.octets}.0/24`, '--gateway', `${seg.octets}.1`, '-o', `parent=${seg.parent}.42`, 'vlan42');
  t.regex((await run('ip', ['-d', 'link', 'show', `${seg.parent}.42`])).stdout, /vlan protocol 802\.1Q id 42/);
  await d.tsnet('sandbox', 'create', '--name', 'v', '--network', 'vlan42');
  t.true(await pings(d, 'v', `${seg.octets}.1`, 2), 'reaches the segment on VLAN 42');
  await d.tsnet('sandbox', 'rm', 'v');
  await d.tsnet('network', 'rm', 'vlan42');
  await t.throwsAsync(run('ip', ['link', 'show', `${seg.parent}.42`]), undefined, 'the sub-interface tsnet made is gone');
  await t.notThrowsAsync(run('ip', ['link', 'show', seg.parent]), 'the parent it did not make stays');
});

test.serial('the host reaches its macvlan sandboxes only through a shim (-o shim=IP)', async (t) => {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  const seg = await segment(t, d);
  await d.tsnet('network', 'create', '-d', 'macvlan', '--subnet', `${seg.octets}.0/24`, '-o', `parent=${seg.parent}`, '-o', `shim=${seg.octets}.250`, 'lan');
  await d.tsnet('sandbox', 'create', '--name', 'm1', '--network', 'lan');
  const m1 = JSON.parse(await d.tsnet('sandbox', 'inspect', 'm1'))[0].Networks.lan.IPv4Address as string;
  t.true(await hostPings(m1), 'the host reaches m1 through the shim');
  t.regex((await d.fails('network', 'create', '-d', 'macvlan', '--subnet', '10.9.9.0/24', 'noparent')).stderr, /macvlan needs -o parent=/);
});
