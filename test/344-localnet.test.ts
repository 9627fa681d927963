import test, { type ExecutionContext } from 'ava';
import { execFile, spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { createServer } from 'node:net';
import { promisify } from 'node:util';
import { systemTool } from '../src/net/tools.js';
import { startDaemon } from './helpers/daemon.js';
import { startUpstream } from './helpers/upstream.js';

const run = promisify(execFile);
const fixture = (f: string): string => new URL(`./fixtures/${f}`, import.meta.url).pathname;

/** A TCP service of the host's at `ip`: it answers each connection with `word`. */
async function hostService(t: ExecutionContext, ip: string, word: string): Promise<number> {
  const server = createServer((c) => c.end(`${word}\n`));
  await new Promise<void>((resolve) => server.listen(0, ip, resolve));
  t.teardown(() => server.close());
  return (server.address() as { port: number }).port;
}

/** What HOST:PORT answers over TCP from inside namespace `netns` (or the host), or null. */
const ask = (host: string, port: number, netns?: string): Promise<string | null> => {
  const cmd = [process.execPath, fixture('ask.mjs'), 'tcp', host, String(port)];
  const argv = netns === undefined ? cmd : [systemTool('ip'), 'netns', 'exec', netns, ...cmd];
  return run(argv[0]!, argv.slice(1)).then(
    (r) => r.stdout.trim(),
    () => null,
  );
};

test.serial("a sandbox cannot reach the host's 127.0.0.1 services, but reaches a port published on 127.0.0.1 and the host's gateway address", async (t) => {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  const subnet = d.subnet();
  const gateway = subnet.replace(/0\/24$/, '1');
  const published = randomInt(20000, 32000);
  await d.tsnet('network', 'create', '--subnet', subnet, 'app');
  await d.tsnet('sandbox', 'create', '--name', 'web', '--network', 'app', '-p', `127.0.0.1:${published}:80`);
  await d.tsnet('sandbox', 'create', '--name', 'client', '--network', 'app');
  const [web, client] = JSON.parse(await d.tsnet('sandbox', 'inspect', 'web', 'client')) as { NetnsName: string }[];
  const echo = spawn(systemTool('ip'), ['netns', 'exec', web!.NetnsName, process.execPath, fixture('peer-echo.mjs'), '80'], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => echo.kill('SIGKILL'));
  await new Promise((r) => echo.stdout!.once('data', r));
  const secret = await hostService(t, '127.0.0.1', 'secret');
  const onGateway = await hostService(t, gateway, 'gateway');

  // The sandbox is root in its namespace: it can send 127.0.0.0/8 to its gateway, as an attacker would.
  const ns = client!.NetnsName;
  for (const dev of ['all', 'eth0']) await run('ip', ['netns', 'exec', ns, 'sysctl', '-qw', `net.ipv4.conf.${dev}.route_localnet=1`]);
  // Its own 127.0.0.0/8 goes (a local source address on an incoming packet would be refused as its own).
  await run('ip', ['-n', ns, '-4', 'addr', 'flush', 'dev', 'lo']);
  await run('ip', ['-n', ns, 'route', 'add', '127.0.0.0/8', 'via', gateway, 'dev', 'eth0']);

  t.is(await ask('127.0.0.1', secret), 'secret', "the host itself reaches its 127.0.0.1 service");
  t.is(await ask('127.0.0.1', secret, ns), null, "the sandbox does not reach the host's 127.0.0.1 service");
  t.is(await ask('127.0.0.1', published, ns), gateway, 'the same sandbox reaches the port published on 127.0.0.1 (DNATed, hairpin masqueraded)');
  t.is(await ask(gateway, onGateway, ns), 'gateway', "the same sandbox reaches the host's service on its gateway address");
  t.not(await ask('127.0.0.1', published), null, 'the host reaches the port published on its 127.0.0.1');
});
