import test from 'ava';
import { spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { busyboxRoot, nodeRoot, podmanSetup, type Podman } from './helpers/podman.js';
import { run } from './helpers/netns.js';
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

test.serial('the Dockerfile builds with podman from a local base, and its image answers on 127.0.0.11 inside the container and on the address it is told, forwarding only for askers inside --allow', async (t) => {
  t.timeout(600_000);
  const x = randomInt(1, 250);
  const gateway = `10.93.${x}.1`;
  const p = await podmanSetup(t, '127.0.0.53', { storage: 'overlay' });
  await p.importDir(await nodeRoot(t), 'localhost/tsnet-node-base:test');
  // The build reads packages from a copy of this machine's npm cache (npm writes to the cache it
  // reads) and nothing else: no network.
  const root = new URL('..', import.meta.url).pathname;
  const cache = mkdtempSync(join(tmpdir(), 'tsnet-npm-cache-'));
  t.teardown(() => rmSync(cache, { recursive: true, force: true }));
  await run('cp', ['-a', join(homedir(), '.npm', '_cacache'), cache]);
  await p.podman('build', '--quiet', '--network', 'none', '--volume', `${cache}:/root/.npm`, '--build-arg', 'BASE=localhost/tsnet-node-base:test', '--build-arg', 'NPM_CI_FLAGS=--offline', '--tag', 'localhost/tsnet-dns:test', '--file', join(root, 'Dockerfile'), root);

  // A network with podman's own DNS off: the image is the resolver here. Its upstream is the
  // test's, on the network host's side of the bridge.
  await p.network('plain', `10.93.${x}.0/24`, { dns: false });
  await upstreamIn(t, p, gateway, 5353);
  const dir = mkdtempSync(join(tmpdir(), 'tsnet-image-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'records.json'), JSON.stringify({ networks: [{ name: 'app', subnet: '172.29.0.0/24' }], endpoints: [{ id: 'a'.repeat(64), name: 'api', networks: { app: { ipv4: '172.29.0.7' } } }] }));
  const address = `10.93.${x}.5`;
  await p.podman('run', '-d', '--name', 'dns', '--network', 'plain', '--ip', address, '--volume', `${dir}/records.json:/etc/tsnet/records.json:ro`, 'localhost/tsnet-dns:test',
    '--records', '/etc/tsnet/records.json', '--listen', '127.0.0.11:53', '--listen', `${address}:53`, '--upstream', `${gateway}:5353`, '--allow', '127.0.0.0/8');
  const inside = await p.netnsOf('dns');
  const dig = async (netns: string, server: string, name: string) => {
    const out = await p.inNet(netns, 'dig', `@${server}`, '+tries=3', '+time=2', '+noall', '+comments', '+answer', name);
    return { status: /status: (\w+)/.exec(out)?.[1], answers: out.split('\n').filter((l) => l !== '' && !l.startsWith(';')).map((l) => l.split(/\s+/).at(-1)!) };
  };
  await within(30_000, 'the image answers on 127.0.0.11 in its container', async () => (await dig(inside, '127.0.0.11', 'api')).answers[0] === '172.29.0.7').catch(async (err: Error) => {
    throw new Error(`${err.message}; the container's log: ${await p.podman('logs', 'dns').catch((e: Error) => e.message)}`);
  });
  t.deepEqual(await dig(inside, '127.0.0.11', 'api.app'), { status: 'NOERROR', answers: ['172.29.0.7'] });
  t.deepEqual(await dig(inside, '127.0.0.11', 'www.example.com'), { status: 'NOERROR', answers: [address] }, 'forwarded from loopback, from the container\'s address');
  const hostSide = `/run/netns/${p.host}`;
  t.deepEqual(await dig(hostSide, address, 'api'), { status: 'NOERROR', answers: ['172.29.0.7'] }, 'local names answer anyone, on the address it was told');
  t.deepEqual(await dig(hostSide, address, 'www.example.com'), { status: 'REFUSED', answers: [] }, 'no recursion for an asker outside --allow');
});
