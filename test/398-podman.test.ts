import test from 'ava';
import { spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { busyboxRoot, podmanSetup, type Podman } from './helpers/podman.js';
import { within } from './helpers/poll.js';

// Debian's podman 4.3 with real containers (busybox-static, imported: no registry), with
// tsnet-dns installed as the aardvark-dns podman finds in its helper directory.
const WHOAMI = new URL('./fixtures/whoami-dns.mjs', import.meta.url).pathname;
const IMAGE = 'localhost/tsnet-busybox:test';

/** The test's upstream in the podman host namespace: answers every A query with who asked. */
async function upstreamIn(t: Parameters<typeof podmanSetup>[0], p: Podman, address: string, port: number): Promise<void> {
  const child = spawn('nsenter', [`--net=/run/netns/${p.host}`, process.execPath, WHOAMI, address, String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => child.kill('SIGKILL'));
  await new Promise((r) => child.stdout!.once('data', r));
}

/** What busybox's nslookup inside `container` says of `name`: the addresses, or the failure's word. */
async function lookup(p: Podman, container: string, name: string): Promise<string[] | string> {
  // nslookup exits 1 on a failure it prints on stdout.
  const out = await p.podman('exec', container, 'sh', '-c', `nslookup ${name} 2>&1 || true`);
  const failure = /can't find [^:]+: (\w+)/.exec(out);
  if (failure) return failure[1]!;
  const answers = out.split(/\nName:/).slice(1).flatMap((block) => [...block.matchAll(/Address: ([0-9a-f.:]+)/g)].map((m) => m[1]!));
  return answers.length > 0 ? answers : out.trim();
}

const ipOn = async (p: Podman, container: string, network: string): Promise<string> =>
  (await p.podman('inspect', '--format', `{{(index .NetworkSettings.Networks "${network}").IPAddress}}`, container)).trim();

test.serial('podman 4.3 with tsnet-dns as its aardvark-dns: containers resolve by name, alias and short id on their network only; network connect and rm change answers; other names reach the network host\'s resolvers', async (t) => {
  t.timeout(240_000);
  const p = await podmanSetup(t, '127.0.0.53');
  await upstreamIn(t, p, '127.0.0.53', 53);
  await p.importDir(busyboxRoot(t), IMAGE);
  const x = randomInt(1, 250);
  const front = await p.network('front', `10.91.${x}.0/24`);
  await p.network('back', `10.92.${x}.0/24`);
  const start = (name: string, network: string, ...more: string[]) => p.podman('run', '-d', '--name', name, '--network', network, ...more, IMAGE, 'sleep', '100000');
  const webId = (await start('web', 'front', '--network-alias', 'www')).trim();
  await start('client', 'front');
  await start('lonely', 'back');
  const webIp = await ipOn(p, 'web', 'front');

  for (const name of ['web', 'www', webId.slice(0, 12), 'web.dns.podman']) t.deepEqual(await lookup(p, 'client', name), [webIp], name);
  // The name is the container, not only a record: traffic reaches it over netavark's bridge.
  await p.podman('exec', 'client', 'ping', '-c', '1', '-W', '2', 'web');
  t.is(await lookup(p, 'lonely', 'web'), 'NXDOMAIN', 'a container on another network does not see web');
  // aardvark-dns 1.4 answers NXDOMAIN here; a name that exists has NODATA for a type it lacks.
  const aaaa = await p.inNet(await p.netnsOf('client'), 'dig', `@${front.gateway}`, '+tries=2', '+time=2', 'AAAA', 'web.dns.podman');
  t.regex(aaaa, /status: NOERROR/);
  t.regex(aaaa, /ANSWER: 0,/);

  await p.podman('network', 'connect', 'back', 'web');
  const webBack = await ipOn(p, 'web', 'back');
  await within(10_000, 'web answers on back after network connect', async () => JSON.stringify(await lookup(p, 'lonely', 'web')) === JSON.stringify([webBack]));
  t.deepEqual(await lookup(p, 'client', 'web'), [webIp], 'on front, web keeps its front address');

  // Forwarded: no network DNS servers are set, so the host's resolv.conf (the test's upstream on
  // the host namespace's loopback, which answers with the asker's address) is asked.
  t.deepEqual(await lookup(p, 'client', 'www.example.com'), ['127.0.0.1']);

  await p.podman('rm', '--force', '--time', '0', 'web');
  await within(10_000, 'web is gone after podman rm', async () => (await lookup(p, 'client', 'web')) === 'NXDOMAIN');
  t.is(await lookup(p, 'lonely', 'web'), 'NXDOMAIN');
  t.deepEqual(await lookup(p, 'client', 'client'), [await ipOn(p, 'client', 'front')]);

  const pid = Number(await p.inHost('cat', '/run/containers/networks/aardvark-dns/aardvark.pid'));
  t.regex(await p.inHost('cat', `/proc/${pid}/cmdline`), /aardvark-dns\0--config\0/);
  await p.podman('rm', '--force', '--time', '0', 'client', 'lonely');
  await within(10_000, 'tsnet-dns ends with the last container', async () => (await p.inHost('sh', '-c', `test -d /proc/${pid} || echo gone`)).trim() === 'gone');
});
