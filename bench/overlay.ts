// `npm run bench:overlay` (root): the overlay's costs, on three hosts in namespaces on one LAN
// bridge with a daemon each and one etcd (test/helpers/cluster-hosts.ts, as test/380 runs them):
// TCP throughput sandbox to sandbox across hosts over the overlay, plain and encrypted (VXLAN
// inside WireGuard; wireguard-go where the kernel has none), against the same between the
// hosts themselves (iperf3, the ratio), and connections per second through a VIP whose tasks run
// on other hosts against straight to one task.
import { execFile, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { call } from '../src/control/client.js';
import { startClusterHosts, type ClusterHost } from '../test/helpers/cluster-hosts.js';
import { within } from '../test/helpers/poll.js';
import { benchOwner } from './owner.js';

const run = promisify(execFile);
const ROOT = new URL('..', import.meta.url).pathname;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 3000);
const fixture = (f: string): string => join(ROOT, 'test/fixtures', f);

/** iperf3 from namespace `from` to `server` (an iperf3 -s already running there); Gbit/s received. */
async function iperf(from: string, server: string): Promise<number> {
  const { stdout } = await run('ip', ['netns', 'exec', from, 'iperf3', '-J', '-c', server, '-t', String(SECONDS)], { timeout: (SECONDS + 20) * 1000 });
  return (JSON.parse(stdout) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received.bits_per_second / 1e9;
}

function iperfServer(netns: string): () => void {
  const child = spawn('ip', ['netns', 'exec', netns, 'iperf3', '-s'], { stdio: 'ignore' });
  return () => child.kill('SIGKILL');
}

/** Connections per second from sandbox namespace `from` to `target`:80 (connect-loop, 8 at a time). */
async function connectionRate(from: string, target: string): Promise<{ rate: number; failed: number }> {
  const t0 = performance.now();
  const { stdout } = await run('ip', ['netns', 'exec', from, process.execPath, fixture('connect-loop.mjs'), target, '80', String(CONNECTIONS), '8'], { timeout: 300_000 });
  const r = JSON.parse(stdout) as { ok: number; failed: number };
  return { rate: r.ok / ((performance.now() - t0) / 1000), failed: r.failed };
}

const sb = (h: ClusterHost, name: string): string => `${h.netnsPrefix}${name}`;

async function main(): Promise<void> {
  const owner = benchOwner('bench:overlay');
  const stops: (() => void)[] = [];
  try {
    const c = await startClusterHosts(owner, { leaseTtl: 10 });
    await Promise.all(c.hosts.map((h) => h.start()));
    const [a, b, n3] = c.hosts as [ClusterHost, ClusterHost, ClusterHost];
    await a.tsnet('network', 'create', '-d', 'overlay', '--attachable', '--subnet', c.subnet(), 'bench');
    await within(5000, 'bench on n3', async () => (await n3.tsnet('network', 'ls')).includes('bench'));
    await a.tsnet('sandbox', 'create', '--name', 'server', '--network', 'bench');
    await n3.tsnet('sandbox', 'create', '--name', 'client', '--network', 'bench');
    const serverIp = (JSON.parse(await a.tsnet('sandbox', 'inspect', 'server')) as { Networks: { bench: { IPv4Address: string } } }[])[0]!.Networks.bench.IPv4Address;
    await a.tsnet('network', 'create', '-d', 'overlay', '--attachable', '-o', 'encrypted=true', '--subnet', c.subnet(), 'benchenc');
    await within(5000, 'benchenc on n3', async () => (await n3.tsnet('network', 'ls')).includes('benchenc'));
    await a.tsnet('sandbox', 'create', '--name', 'encserver', '--network', 'benchenc');
    await n3.tsnet('sandbox', 'create', '--name', 'encclient', '--network', 'benchenc');
    const encServerIp = (JSON.parse(await a.tsnet('sandbox', 'inspect', 'encserver')) as { Networks: { benchenc: { IPv4Address: string } } }[])[0]!.Networks.benchenc.IPv4Address;
    const kind = (JSON.parse(await a.tsnet('network', 'inspect', 'benchenc')) as { Tunnel: { Kind: string } }[])[0]!.Tunnel.Kind;

    stops.push(iperfServer(a.netns), iperfServer(sb(a, 'server')), iperfServer(sb(a, 'encserver')));
    await new Promise((r) => setTimeout(r, 500));
    const underlay = await iperf(n3.netns, a.address);
    const overlay = await iperf(sb(n3, 'client'), serverIp);
    const encrypted = await iperf(sb(n3, 'encclient'), encServerIp);
    process.stderr.write(`iperf3: underlay ${underlay.toFixed(2)}, overlay ${overlay.toFixed(2)}, encrypted ${encrypted.toFixed(2)} Gbit/s\n`);

    // A VIP whose three tasks run one per node, asked from n3's client: two of three connections cross hosts.
    await a.tsnet('service', 'create', '--name', 'web', '--network', 'bench', '--port', 'http:tcp:80', '--replicas', '3', '--health-tcp', '80', '--health-interval', '200', '--', process.execPath, fixture('self-echo.mjs'), '80');
    await within(30_000, 'three healthy tasks', async () => (await call<{ Tasks: { Healthy: boolean }[] }>(a.socket, 'GET', '/services/web')).Tasks.filter((x) => x.Healthy).length === 3);
    const tasks = (await call<{ VirtualIP: string; Tasks: { Address: string; Node: string }[] }>(a.socket, 'GET', '/services/web'));
    const remote = tasks.Tasks.find((x) => x.Node === a.name)!.Address;
    const viaVip = await connectionRate(sb(n3, 'client'), tasks.VirtualIP);
    const direct = await connectionRate(sb(n3, 'client'), remote);
    void b;

    const lines = [
      `Run ${new Date().toISOString().slice(0, 10)} on ${cpus().length} × ${cpus()[0]?.model.trim()}; iperf3 ${SECONDS} s, ${CONNECTIONS} connections each.`,
      '',
      '| measure | result |',
      '|---|---|',
      `| TCP n3 → n1, host to host on the underlay (iperf3) | ${underlay.toFixed(2)} Gbit/s |`,
      `| TCP sandbox on n3 → sandbox on n1 over the overlay (VXLAN, MTU 1450) | ${overlay.toFixed(2)} Gbit/s (${(overlay / underlay).toFixed(2)} × the underlay) |`,
      `| TCP sandbox on n3 → sandbox on n1 over an encrypted overlay (VXLAN in WireGuard, ${kind}, MTU 1390) | ${encrypted.toFixed(2)} Gbit/s (${(encrypted / underlay).toFixed(2)} × the underlay) |`,
      `| connections/s from n3 through a VIP over tasks on n1, n2, n3 | ${viaVip.rate.toFixed(0)}/s, ${viaVip.failed} failed |`,
      `| the same straight to the task on n1 | ${direct.rate.toFixed(0)}/s, ${direct.failed} failed (VIP ${(viaVip.rate / direct.rate).toFixed(2)} ×) |`,
    ];
    const out = join(ROOT, 'bench/out');
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, 'overlay.md'), lines.join('\n') + '\n');
    process.stdout.write(lines.join('\n') + '\n');
  } finally {
    for (const stop of stops) stop();
    await owner.done();
  }
}

main().then(
  () => process.exit(0),
  (err: Error) => {
    process.stderr.write(`bench: ${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);
