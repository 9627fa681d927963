import test, { type ExecutionContext } from 'ava';
import { execFile, spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { createServer } from 'node:net';
import { promisify } from 'node:util';
import { systemTool } from '../src/net/tools.js';
import { startDaemon, type TestDaemon } from './helpers/daemon.js';
import { across, startLoad } from './helpers/load.js';
import { outsideWorld } from './helpers/outside.js';
import { startUpstream } from './helpers/upstream.js';

const run = promisify(execFile);
const fixture = (f: string): string => new URL(`./fixtures/${f}`, import.meta.url).pathname;

/** peer-echo on `port` inside sandbox `name` (answers with the source address it sees). */
async function serveIn(t: ExecutionContext, d: TestDaemon, name: string, port: number): Promise<void> {
  const [sb] = JSON.parse(await d.tsnet('sandbox', 'inspect', name));
  const child = spawn(systemTool('ip'), ['netns', 'exec', sb.NetnsName, process.execPath, fixture('peer-echo.mjs'), String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => child.kill('SIGKILL'));
  await new Promise((r) => child.stdout!.once('data', r));
}

/** Asks HOST:PORT over `proto` from the host, or from inside namespace `netns`; the reply, or null. */
async function ask(proto: 'tcp' | 'udp', host: string, port: number, netns?: string): Promise<string | null> {
  const cmd = [process.execPath, fixture('ask.mjs'), proto, host, String(port)];
  const argv = netns === undefined ? cmd : [systemTool('ip'), 'netns', 'exec', netns, ...cmd];
  return run(argv[0]!, argv.slice(1)).then(
    (r) => r.stdout.trim(),
    () => null,
  );
}

/** A TCP listener on the host at `ip` answering "host": the control for a "cannot reach" from outside. */
async function hostListener(t: ExecutionContext, ip: string): Promise<number> {
  const server = createServer((c) => c.end('host\n'));
  await new Promise<void>((r) => server.listen(0, ip, r));
  t.teardown(() => server.close());
  return (server.address() as { port: number }).port;
}

/** A daemon, an outside namespace, and sandbox `web` serving peer-echo on :80 published at `port`. */
async function publishedWeb(t: ExecutionContext) {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  const out = await outsideWorld(t, d.tag);
  // Below the ephemeral range (32768+), where another test's outgoing connection may hold the port.
  const port = randomInt(20000, 32000);
  await d.tsnet('network', 'create', '--subnet', d.subnet(), 'app');
  await d.tsnet('sandbox', 'create', '--name', 'web', '--network', 'app', '-p', `${port}:80`);
  await serveIn(t, d, 'web', 80);
  return { d, out, port };
}

test.serial('a published port is reached from outside (source kept), from the host, from 127.0.0.1 and from a sibling (hairpin), over TCP and UDP', async (t) => {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  const out = await outsideWorld(t, d.tag);
  const [tcpPort, udpPort] = [randomInt(20000, 26000), randomInt(26000, 32000)];
  await d.tsnet('network', 'create', '--subnet', d.subnet(), 'app');
  await d.tsnet('sandbox', 'create', '--name', 'web', '--network', 'app', '-p', `${tcpPort}:80`, '-p', `${udpPort}:80/udp`);
  await d.tsnet('sandbox', 'create', '--name', 'sibling', '--network', 'app');
  await serveIn(t, d, 'web', 80);
  t.deepEqual((await d.tsnet('sandbox', 'port', 'web')).trim().split('\n'), [`80/tcp -> 0.0.0.0:${tcpPort}`, `80/udp -> 0.0.0.0:${udpPort}`]);

  t.is(await ask('tcp', out.hostIp, tcpPort, out.name), out.outIp, 'from outside, the client address is kept');
  t.is(await ask('udp', out.hostIp, udpPort, out.name), out.outIp);
  t.not(await ask('tcp', out.hostIp, tcpPort), null, 'from the host to one of its addresses');
  t.not(await ask('tcp', '127.0.0.1', tcpPort), null, 'from the host to 127.0.0.1');
  const sibling = JSON.parse(await d.tsnet('sandbox', 'inspect', 'sibling'))[0].NetnsName as string;
  t.not(await ask('tcp', out.hostIp, tcpPort, sibling), null, 'hairpin: a sibling through the host address');
  t.is(await ask('tcp', out.hostIp, tcpPort, out.name), out.outIp, 'control: the published port, from the same place');
  t.is(await ask('tcp', out.hostIp, tcpPort + 1, out.name), null, 'an unpublished port is not reachable');
});

test.serial('-P publishes every --expose port to a free host port; rm takes the rules away', async (t) => {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  const out = await outsideWorld(t, d.tag);
  await d.tsnet('network', 'create', '--subnet', d.subnet(), 'app');
  await d.tsnet('sandbox', 'create', '--name', 'web', '--network', 'app', '--expose', '80', '-P');
  await serveIn(t, d, 'web', 80);
  const [line] = (await d.tsnet('sandbox', 'port', 'web')).trim().split('\n');
  const port = Number(/^80\/tcp -> 0\.0\.0\.0:(\d+)$/.exec(line ?? '')?.[1]);
  t.true(port > 1024, line);
  t.is(await ask('tcp', out.hostIp, port, out.name), out.outIp);
  t.regex((await run(systemTool('nft'), ['list', 'table', 'inet', `tsnet_t${d.tag}`])).stdout, new RegExp(`dport ${port}`), 'control: the rule is listed while published');
  const control = await hostListener(t, out.hostIp);
  await d.tsnet('sandbox', 'rm', 'web');
  t.notRegex((await run(systemTool('nft'), ['list', 'table', 'inet', `tsnet_t${d.tag}`])).stdout, new RegExp(`dport ${port}`));
  t.is(await ask('tcp', out.hostIp, control, out.name), 'host', 'control: the outside still reaches the host');
  t.is(await ask('tcp', out.hostIp, port, out.name), null);
});

test.serial('a host port already taken is refused with a clear error and nothing is created', async (t) => {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  const taken = createServer();
  await new Promise<void>((r) => taken.listen(0, '0.0.0.0', r));
  t.teardown(() => taken.close());
  const port = (taken.address() as { port: number }).port;
  await d.tsnet('network', 'create', '--subnet', d.subnet(), 'app');
  const r = await d.fails('sandbox', 'create', '--name', 'web', '--network', 'app', '-p', `${port}:80`);
  t.regex(r.stderr, new RegExp(`Bind for 0\\.0\\.0\\.0:${port} failed: port is already allocated`));
  t.notRegex(await d.tsnet('sandbox', 'ls'), /web/);
  t.regex((await d.fails('sandbox', 'create', '--name', 'x', '-p', '70000:80')).stderr, /host port "70000" is not a port/);
});

test.serial('rule swaps during 2000 connections to a published port lose none', async (t) => {
  const { d, out, port } = await publishedWeb(t);
  const load = startLoad(t, out.name, out.hostIp, port, 8);
  // Every network change re-renders and swaps the whole table while connections flow.
  const result = await across(
    load,
    async () => {
      for (let i = 0; i < 6; i++) {
        await d.tsnet('network', 'create', '--subnet', d.subnet(), `churn${i}`);
        await d.tsnet('network', 'rm', `churn${i}`);
      }
    },
    { total: 2000 },
  );
  t.true(result.during > 0, 'connections finished while the 12 swaps ran');
  t.is(result.failed, 0);
  t.true(result.ok >= 2000, `${result.ok} connections`);
});

test.serial('after kill -9 and a restart a published port works again', async (t) => {
  const { d, out, port } = await publishedWeb(t);
  await d.kill9();
  await d.start();
  t.is(await ask('tcp', out.hostIp, port, out.name), out.outIp);
  t.regex((await d.fails('sandbox', 'create', '--name', 'thief', '-p', `${port}:80`)).stderr, /port is already allocated/, 'the port is held again');
});
