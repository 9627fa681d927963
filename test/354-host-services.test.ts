import test from 'ava';
import { execFile } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { createServer } from 'node:http';
import { promisify } from 'node:util';
import { startDaemon } from './helpers/daemon.js';
import { startUpstream } from './helpers/upstream.js';

const run = promisify(execFile);
const curl = (url: string, netns?: string): Promise<string | null> =>
  run(...((netns === undefined ? ['curl', ['-s', '-m', '2', url]] : ['ip', ['netns', 'exec', netns, 'curl', '-s', '-m', '2', url]]) as [string, string[]])).then(
    (r) => r.stdout,
    () => null,
  );

test.serial('--metrics PORT serves on loopback only', async (t) => {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const port = randomInt(20000, 32000);
  await startDaemon(t, up.label, ['--metrics', String(port)]);
  const { stdout } = await run('ss', ['-ltnH', `sport = :${port}`]);
  t.deepEqual(stdout.trim().split('\n').map((l) => l.split(/\s+/)[3]), [`127.0.0.1:${port}`]);
  t.regex((await curl(`http://127.0.0.1:${port}/metrics`)) ?? '', /tsnet_dns_queries_total/);
});

test.serial("a root user in a sandbox who routes 127.0.0.0/8 to the gateway does not reach the host's loopback services", async (t) => {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  // A service of the host's own, on loopback only.
  const host = createServer((_q, s) => s.end('host-only\n'));
  await new Promise<void>((r) => host.listen(0, '127.0.0.1', r));
  t.teardown(() => host.close());
  const port = (host.address() as { port: number }).port;
  t.is(await curl(`http://127.0.0.1:${port}/`), 'host-only\n');
  await d.tsnet('network', 'create', '--subnet', d.subnet(), 'app');
  await d.tsnet('sandbox', 'create', '--name', 'a', '--network', 'app');
  const [sb] = JSON.parse(await d.tsnet('sandbox', 'inspect', 'a'));
  const ns = sb.NetnsName as string;
  const gw = JSON.parse(await d.tsnet('network', 'inspect', 'app'))[0].IPAM.Config[0].Gateway as string;
  // Everything a root user inside may do: 127.0.0.1 leaves through eth0 to the host's bridge.
  for (const cmd of [
    ['ip', 'route', 'del', 'local', '127.0.0.0/8', 'dev', 'lo', 'table', 'local'],
    ['ip', 'route', 'del', 'local', '127.0.0.1', 'dev', 'lo', 'table', 'local'],
    ['ip', 'addr', 'del', '127.0.0.1/8', 'dev', 'lo'],
    ['sysctl', '-qw', 'net.ipv4.conf.all.route_localnet=1', 'net.ipv4.conf.eth0.route_localnet=1'],
    ['ip', 'route', 'add', '127.0.0.1/32', 'via', gw, 'dev', 'eth0'],
  ]) await run('ip', ['netns', 'exec', ns, ...cmd]);
  t.regex((await run('ip', ['netns', 'exec', ns, 'ip', 'route', 'get', '127.0.0.1'])).stdout, new RegExp(`via ${gw.replace(/\./g, '\\.')} dev eth0`));
  t.is(await curl(`http://127.0.0.1:${port}/`, ns), null);
  t.is(await curl(`http://${gw}:${port}/`, ns), null, 'nor through the gateway address');
});
