import test, { type ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { processAlive } from '../src/daemon/replica-process.js';
import { owned } from './helpers/ledger.js';
import { within } from './helpers/poll.js';
import { run } from './helpers/netns.js';

// Debian's netavark (1.4) drives tsnet-dns exactly as it drives aardvark-dns: it writes the
// network files, starts `BIN --config DIR -p 53 run` and signals it on every change. All of it
// runs in a "host" namespace the test makes, so netavark's bridges and iptables rules go with it.
const NETAVARK = '/usr/lib/podman/netavark';
const BIN = new URL('../bin/tsnet-dns', import.meta.url).pathname;
const WHOAMI = new URL('./fixtures/whoami-dns.mjs', import.meta.url).pathname;

interface Net {
  name: string;
  id: string;
  bridge: string;
  subnet: string;
  gateway: string;
  dns?: string[];
}

const hex = (n: number): string => randomBytes(n).toString('hex');

async function namespace(t: ExecutionContext, name: string): Promise<string> {
  owned(t.title, name);
  await run('ip', ['netns', 'add', name]);
  t.teardown(() => run('ip', ['netns', 'del', name]).catch(() => {}));
  return `/run/netns/${name}`;
}

test.serial('netavark 1.4 runs tsnet-dns as its aardvark-dns: containers resolve by name and alias on their network only, teardown takes the name away, the last one stops it', async (t) => {
  const tag = hex(3);
  const host = `tsnv${tag}-h`;
  await namespace(t, host);
  const config = mkdtempSync(join(tmpdir(), 'tsnet-netavark-'));
  const aardvark = join(config, 'aardvark-dns');
  t.teardown(() => {
    const pidFile = join(aardvark, 'aardvark.pid');
    if (existsSync(pidFile)) {
      try {
        process.kill(Number(readFileSync(pidFile, 'utf8')), 'SIGKILL');
      } catch {
        // gone already
      }
    }
    rmSync(config, { recursive: true, force: true });
  });
  const inHost = (...cmd: string[]) => run('ip', ['netns', 'exec', host, ...cmd], { timeout: 20_000 });
  await inHost('ip', 'link', 'set', 'lo', 'up');
  // The network's DNS server, on the host namespace's own loopback: forwarded names never leave the test.
  const upstream = spawn('ip', ['netns', 'exec', host, process.execPath, WHOAMI, '127.0.0.53', '53'], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => upstream.kill('SIGKILL'));
  await new Promise((r) => upstream.stdout!.once('data', r));

  const x = randomInt(1, 250);
  // The bridges made beforehand, with a MAC of their own: a bridge netavark makes takes the lowest
  // MAC of its ports, so it changes when that container leaves, and the others' ARP entries for
  // the gateway point nowhere for up to 45 s (the kernel's doing, not netavark's or ours). netavark
  // 1.4 leaves a bridge it finds as it is, so its gateway address is given here too.
  for (const [i, [bridge, gateway]] of [[`tsnv${tag}0`, `10.89.${x}.1/24`], [`tsnv${tag}1`, `10.90.${x}.1/24`]].entries()) {
    owned(t.title, bridge!);
    await inHost('ip', 'link', 'add', bridge!, 'address', `02:00:5e:00:0${i}:01`, 'type', 'bridge');
    await inHost('ip', 'addr', 'add', gateway!, 'dev', bridge!);
    await inHost('ip', 'link', 'set', bridge!, 'up');
  }
  const mynet: Net = { name: `my${tag}`, id: hex(32), bridge: `tsnv${tag}0`, subnet: `10.89.${x}.0/24`, gateway: `10.89.${x}.1`, dns: ['127.0.0.53'] };
  const other: Net = { name: `ot${tag}`, id: hex(32), bridge: `tsnv${tag}1`, subnet: `10.90.${x}.0/24`, gateway: `10.90.${x}.1` };
  const options = (id: string, name: string, net: Net, ip: string, aliases: string[]) => ({
    container_id: id,
    container_name: name,
    port_mappings: null,
    networks: { [net.name]: { interface_name: 'eth0', static_ips: [ip], aliases } },
    network_info: {
      [net.name]: {
        name: net.name,
        id: net.id,
        driver: 'bridge',
        network_interface: net.bridge,
        subnets: [{ subnet: net.subnet, gateway: net.gateway }],
        ipv6_enabled: false,
        internal: false,
        dns_enabled: true,
        ...(net.dns === undefined ? {} : { network_dns_servers: net.dns }),
        ipam_options: { driver: 'host-local' },
      },
    },
  });
  const netavark = async (cmd: 'setup' | 'teardown', ns: string, opts: object): Promise<void> => {
    await new Promise<void>((resolve, reject) => {
      const c = spawn('ip', ['netns', 'exec', host, NETAVARK, '--config', config, '--aardvark-binary', BIN, cmd, ns], { stdio: ['pipe', 'ignore', 'pipe'] });
      let stderr = '';
      c.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      c.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`netavark ${cmd}: exit ${code}: ${stderr}`))));
      c.stdin!.end(JSON.stringify(opts));
    });
  };
  const ctr = async (name: string) => ({ name, id: hex(32), path: await namespace(t, `tsnv${tag}-${name}`) });
  const web = await ctr('web');
  const client = await ctr('client');
  const lonely = await ctr('lonely');
  const webOpts = options(web.id, 'web', mynet, `10.89.${x}.2`, ['www', web.id.slice(0, 12)]);
  const clientOpts = options(client.id, 'client', mynet, `10.89.${x}.3`, [client.id.slice(0, 12)]);
  const lonelyOpts = options(lonely.id, 'lonely', other, `10.90.${x}.2`, [lonely.id.slice(0, 12)]);
  await netavark('setup', web.path, webOpts);
  await netavark('setup', client.path, clientOpts);
  await netavark('setup', lonely.path, lonelyOpts);

  const dig = async (from: { path: string }, server: string, name: string): Promise<{ status: string; answers: string[] }> => {
    const { stdout } = await run('nsenter', [`--net=${from.path}`, 'dig', `@${server}`, '+tries=2', '+time=2', name], { timeout: 10_000 });
    return {
      status: /status: (\w+)/.exec(stdout)?.[1] ?? 'NONE',
      answers: (/;; ANSWER SECTION:\n([\s\S]*?)(?:\n\n|$)/.exec(stdout)?.[1] ?? '').split('\n').filter(Boolean).map((l) => l.split(/\s+/).at(-1)!),
    };
  };
  for (const name of ['web', 'www', web.id.slice(0, 12), 'web.dns.podman']) t.deepEqual((await dig(client, mynet.gateway, name)).answers, [`10.89.${x}.2`], name);
  t.is((await dig(lonely, other.gateway, 'web')).status, 'NXDOMAIN', 'a container on another network does not see it');
  t.deepEqual((await dig(lonely, other.gateway, 'lonely')).answers, [`10.90.${x}.2`]);
  // A name that is no container's goes to the network's DNS server (it answers with who asked).
  t.deepEqual((await dig(client, mynet.gateway, 'www.example.com')).answers, ['127.0.0.1'], 'forwarded to 127.0.0.53 in the host namespace');

  await netavark('teardown', web.path, webOpts);
  let gone = false;
  for (let i = 0; i < 30 && !gone; i++) gone = (await dig(client, mynet.gateway, 'web')).status === 'NXDOMAIN' || (await new Promise((r) => setTimeout(r, 100)), false);
  t.true(gone, 'web is gone after its teardown');
  t.deepEqual((await dig(client, mynet.gateway, 'client')).answers, [`10.89.${x}.3`]);

  const pid = Number(readFileSync(join(aardvark, 'aardvark.pid'), 'utf8'));
  await netavark('teardown', client.path, clientOpts);
  await netavark('teardown', lonely.path, lonelyOpts);
  await within(10_000, 'the server ends with the last network', async () => !processAlive(pid));
  t.false(existsSync(join(aardvark, 'aardvark.pid')));
});
