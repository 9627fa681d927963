// `npm run bench:sandboxes`: sandbox create+attach latency, 1000 sandboxes on one daemon (fds,
// RSS), the in-namespace listener alone, and query throughput through 127.0.0.11 inside a
// sandbox against the same server on loopback. Root; namespaces and links it makes are removed.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { call } from '../src/control/client.js';
import { systemTool } from '../src/net/tools.js';
import { removeLeftovers } from './leftovers.js';
import { createServer, Registry } from '../src/index.js';
import { throughput } from './dnsperf.js';
import { rssMb, startPinned, waitForDns } from './procs.js';

const COUNT = Number(process.env.BENCH_SANDBOXES ?? 1000);
const ROOT = new URL('../..', import.meta.url).pathname;
const tag = Math.random().toString(16).slice(2, 8);
const dir = mkdtempSync(join(tmpdir(), 'tsnet-bench-sb-'));
const socket = join(dir, 'tsnet.sock');
const prefix = `tsnet-b${tag}-`;

const pct = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]!;

/** Time to open a listener at 127.0.0.11:53 in a fresh namespace, in-process (the P6 part). */
async function listenerOpen(n: number): Promise<number[]> {
  const server = createServer({ registry: new Registry(), upstreams: [] });
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const ns = `${prefix}l${i}`;
    execFileSync(systemTool('ip'), ['netns', 'add', ns]);
    const t0 = performance.now();
    const l = await server.listen({ address: '127.0.0.11', port: 53, netns: `/run/netns/${ns}` });
    times.push(performance.now() - t0);
    await l.close();
    execFileSync(systemTool('ip'), ['netns', 'del', ns]);
  }
  await server.close();
  return times;
}

async function main(): Promise<void> {
  const listen = await listenerOpen(200);
  const daemon = startPinned(0, process.execPath, [join(ROOT, 'bin/tsnet'), '--socket', socket, 'daemon', '--state-dir', join(dir, 'state'), '--upstream', '127.0.0.1:9', '--bridge', `tsb${tag}`, '--bip', '10.254.254.0/24', '--nft-table', `tsnet_b${tag}`, '--netns-prefix', prefix, '--log-level', 'warn']);
  for (let i = 0; i < 200 && !existsSync(socket); i++) await new Promise((r) => setTimeout(r, 50));
  try {
    await call(socket, 'POST', '/networks/create', { Name: 'bench', IPAM: { Config: [{ Subnet: '10.240.0.0/16' }] } });
    const create: number[] = [];
    for (let i = 0; i < COUNT; i++) {
      const t0 = performance.now();
      await call(socket, 'POST', '/sandboxes/create', { name: `s${i}`, networks: [{ network: 'bench' }] });
      create.push(performance.now() - t0);
      if (i % 100 === 99) process.stderr.write(`${i + 1} sandboxes\n`);
    }
    const fds = readdirSync(`/proc/${daemon.pid}/fd`).length;
    const rss = rssMb(daemon.pid!);

    // Throughput: dnsperf inside sandbox s0 against its 127.0.0.11, and against tsnet-dns on loopback with the same names.
    const names = join(dir, 'names.txt');
    writeFileSync(names, ['s1 A', 's2 A', 's3 A'].join('\n') + '\n');
    const inside = await throughput(53, names, 5, 0, { server: '127.0.0.11', netns: `${prefix}s0` });
    const records = join(dir, 'records.json');
    writeFileSync(records, JSON.stringify({ networks: [{ name: 'bench' }], endpoints: [1, 2, 3].map((i) => ({ id: `${i}`.repeat(12), name: `s${i}`, networks: { bench: { ipv4: `10.240.0.${i + 1}` } } })) }));
    const port = 25000 + Math.floor(Math.random() * 5000);
    const loop = startPinned(0, process.execPath, [join(ROOT, 'bin/tsnet-dns'), '--records', records, '--listen', `127.0.0.1:${port}`, '--upstream', '127.0.0.1:9', '--log-level', 'warn']);
    await waitForDns(port, 10_000, 's1');
    const loopback = await throughput(port, names, 5);
    loop.kill('SIGKILL');

    const removeStart = performance.now();
    for (let i = 0; i < COUNT; i++) await call(socket, 'DELETE', `/sandboxes/s${i}`);
    const removeMs = (performance.now() - removeStart) / COUNT;
    await call(socket, 'DELETE', '/networks/bench');

    const lines = [
      `Run ${new Date().toISOString().slice(0, 10)} on ${cpus().length} × ${cpus()[0]?.model.trim()}; daemon on CPU 0.`,
      '',
      '| measure | result | target |',
      '|---|---|---|',
      `| listener at 127.0.0.11:53 in a new namespace (setns + socket + bind), 200 | p50 ${pct(listen, 0.5).toFixed(2)} ms, p99 ${pct(listen, 0.99).toFixed(2)} ms | P6: p50 ≤ 5 ms |`,
      `| sandbox create + attach through the API (netns, veth, addresses, route, files, listener), first 100 | p50 ${pct(create.slice(0, 100), 0.5).toFixed(1)} ms, p99 ${pct(create.slice(0, 100), 0.99).toFixed(1)} ms | |`,
      `| the same, sandboxes 901–1000 | p50 ${pct(create.slice(-100), 0.5).toFixed(1)} ms, p99 ${pct(create.slice(-100), 0.99).toFixed(1)} ms | no worse than 1.2 × the first 100 |`,
      `| ${COUNT} sandboxes on one daemon | ${fds} fds (${(fds / COUNT).toFixed(2)} per sandbox), RSS ${rss.toFixed(0)} MB | 2 fds per sandbox |`,
      `| sandbox remove | ${removeMs.toFixed(1)} ms each | |`,
      `| local names through 127.0.0.11 inside a sandbox vs tsnet-dns on loopback | ${(inside.qps / 1000).toFixed(1)}k vs ${(loopback.qps / 1000).toFixed(1)}k qps (${(inside.qps / loopback.qps).toFixed(2)} ×) | |`,
    ];
    process.stdout.write(lines.join('\n') + '\n');
  } finally {
    daemon.kill('SIGKILL');
    cleanup();
  }
}

const cleanup = (): void => removeLeftovers({ dir, netnsPrefix: prefix, defaultBridge: `tsb${tag}`, nftTable: `tsnet_b${tag}` });

main().then(
  () => process.exit(0),
  (err: Error) => {
    process.stderr.write(`bench: ${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);
