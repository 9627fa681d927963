// `npm run bench:services` (root): VIP rule update time for 10, 100 and 1000 backends (one
// `nft -f` swap inside a namespace), and connections per second through a VIP against straight
// to a task, with the spread across three tasks. Everything it makes is removed.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { call } from '../src/control/client.js';
import { renderVipTable } from '../src/net/lb/nft-vip.js';
import { nftApply } from '../src/net/nft/apply.js';
import { systemTool } from '../src/net/tools.js';
import { removeLeftovers } from './leftovers.js';
import { startPinned } from './procs.js';

const ROOT = new URL('../..', import.meta.url).pathname;
const tag = Math.random().toString(16).slice(2, 8);
const dir = mkdtempSync(join(tmpdir(), 'tsnet-bench-svc-'));
const socket = join(dir, 'tsnet.sock');
const prefix = `tsnet-v${tag}-`;
const ip = (...args: string[]): string => execFileSync(systemTool('ip'), args).toString();
const pct = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]!;

async function updateTimes(backends: number): Promise<number[]> {
  const ns = `${prefix}u${backends}`;
  ip('netns', 'add', ns);
  try {
    const times: number[] = [];
    for (let i = 0; i < 20; i++) {
      // Alternate between two backend sets so that every swap really changes the map.
      const list = Array.from({ length: backends }, (_, k) => {
        const v = k + 1 + (i % 2) * 5000;
        return { ip: `10.${100 + (v >> 16)}.${(v >> 8) & 255}.${v & 255}`, weight: 1 };
      });
      const t0 = performance.now();
      await nftApply(renderVipTable('tsnet_lb', [{ name: 'api', vip: '10.99.0.100', ports: [{ protocol: 'tcp', port: 80 }], backends: list }]), ns);
      times.push(performance.now() - t0);
    }
    return times;
  } finally {
    ip('netns', 'del', ns);
  }
}

function loop(netns: string, target: string, count: number): { ms: number; by: Record<string, number>; failed: number } {
  const t0 = performance.now();
  const out = execFileSync(systemTool('ip'), ['netns', 'exec', netns, process.execPath, join(ROOT, 'test/fixtures/connect-loop.mjs'), target, '80', String(count), '8']).toString();
  const r = JSON.parse(out) as { by: Record<string, number>; failed: number };
  return { ms: performance.now() - t0, ...r };
}

async function main(): Promise<void> {
  const updates = [];
  for (const n of [10, 100, 1000]) updates.push({ n, times: await updateTimes(n) });

  const daemon = startPinned(0, process.execPath, [join(ROOT, 'bin/tsnet'), '--socket', socket, 'daemon', '--state-dir', join(dir, 'state'), '--upstream', '127.0.0.1:9', '--bridge', `tsv${tag}`, '--bip', '10.252.252.0/24', '--nft-table', `tsnet_v${tag}`, '--netns-prefix', prefix, '--log-level', 'warn']);
  const servers: ReturnType<typeof spawn>[] = [];
  try {
    for (let i = 0; i < 200 && !existsSync(socket); i++) await new Promise((r) => setTimeout(r, 50));
    await call(socket, 'POST', '/networks/create', { Name: 'bench', IPAM: { Config: [{ Subnet: '10.241.0.0/24' }] } });
    const addrs: string[] = [];
    for (const name of ['t1', 't2', 't3', 'client']) {
      const sb = await call<{ NetnsName: string; Networks: Record<string, { IPv4Address: string }> }>(socket, 'POST', '/sandboxes/create', { name, networks: [{ network: 'bench' }] });
      if (name === 'client') continue;
      addrs.push(sb.Networks.bench!.IPv4Address);
      servers.push(spawn(systemTool('ip'), ['netns', 'exec', sb.NetnsName, process.execPath, join(ROOT, 'test/fixtures/self-echo.mjs'), '80'], { stdio: 'ignore' }));
    }
    await new Promise((r) => setTimeout(r, 500));
    const svc = await call<{ VirtualIP: string }>(socket, 'POST', '/services/create', { Name: 'api', Network: 'bench', Ports: ['http:tcp:80'] });
    for (const name of ['t1', 't2', 't3']) await call(socket, 'POST', '/services/api/tasks', { Sandbox: name });
    const clientNs = `${prefix}client`;
    loop(clientNs, svc.VirtualIP, 300);
    const viaVip = loop(clientNs, svc.VirtualIP, 3000);
    const direct = loop(clientNs, addrs[0]!, 3000);
    const spreadPct = Math.max(...addrs.map((a) => Math.abs((viaVip.by[a] ?? 0) - 1000) / 10));
    const lines = [
      `Run ${new Date().toISOString().slice(0, 10)} on ${cpus().length} × ${cpus()[0]?.model.trim()}.`,
      '',
      '| measure | result | target |',
      '|---|---|---|',
      ...updates.map((u) => `| VIP rule update, ${u.n} backends (one \`nft -f\` swap in the sandbox) | p50 ${pct(u.times, 0.5).toFixed(1)} ms, p99 ${pct(u.times, 0.99).toFixed(1)} ms | P8: one atomic swap |`),
      `| connections per second through the VIP vs straight to a task (3000 each) | ${(3000 / (viaVip.ms / 1000)).toFixed(0)} vs ${(3000 / (direct.ms / 1000)).toFixed(0)} (${(direct.ms / viaVip.ms).toFixed(2)} ×), ${viaVip.failed + direct.failed} failed | |`,
      `| spread over 3 equal tasks (3000 connections) | ${addrs.map((a) => viaVip.by[a] ?? 0).join(' / ')}, worst ${spreadPct.toFixed(1)} % off | ±10 % |`,
    ];
    process.stdout.write(lines.join('\n') + '\n');
  } finally {
    for (const s of servers) s.kill('SIGKILL');
    daemon.kill('SIGKILL');
    cleanup();
  }
}

const cleanup = (): void => removeLeftovers({ dir, netnsPrefix: prefix, defaultBridge: `tsv${tag}`, nftTable: `tsnet_v${tag}` });

main().then(
  () => process.exit(0),
  (err: Error) => {
    process.stderr.write(`bench: ${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);
