// After a crash and a restart: does the kernel match the saved state, and is nothing left that
// the state does not name? Each check returns what it found wrong, as sentences.
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { promisify } from 'node:util';
import { systemTool } from '../src/net/tools.js';
import type { SavedState } from './crash-model.js';

const run = promisify(execFile);
const ip = async <T>(args: string[], netns?: string): Promise<T | undefined> =>
  run(systemTool('ip'), [...(netns === undefined ? [] : ['-n', netns]), '-j', ...args]).then(
    (r) => JSON.parse(r.stdout) as T,
    () => undefined,
  );
const nft = (args: string[], netns?: string): Promise<string> =>
  run(...((netns === undefined ? [systemTool('nft'), args] : [systemTool('ip'), ['netns', 'exec', netns, systemTool('nft'), ...args]]) as [string, string[]])).then(
    (r) => r.stdout,
    () => '',
  );

/** The names one run's daemon uses. */
export interface RunNames {
  owner: string;
  netnsPrefix: string;
  nftTable: string;
  /** Replicas run `sleep MARKER`: how their processes are told from every other. */
  marker: string;
}

interface Link {
  ifname: string;
  ifalias?: string;
  master?: string;
  addr_info?: { family: string; local: string }[];
}

/** Whether the daemon holds host port `port` (the test cannot bind it). */
const held = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(true));
    s.listen({ port, host: '0.0.0.0', exclusive: true }, () => s.close(() => resolve(false)));
  });

async function checkNetworks(state: SavedState, n: RunNames, table: string): Promise<string[]> {
  const wrong: string[] = [];
  for (const net of state.networks) {
    if (net.driver !== 'bridge' || net.device === undefined || net.ipam === null) continue;
    const link = (await ip<Link[]>(['addr', 'show', 'dev', net.device]))?.[0];
    if (link === undefined) wrong.push(`network ${net.name}: bridge ${net.device} is missing`);
    else {
      // `ip -j addr` leaves the alias out; `ip -j link` has it.
      link.ifalias = (await ip<Link[]>(['link', 'show', 'dev', net.device]))?.[0]?.ifalias;
      if (link.ifalias !== n.owner) wrong.push(`network ${net.name}: bridge ${net.device} has alias ${link.ifalias}`);
      if (!link.addr_info?.some((a) => a.local === net.ipam!.gateway)) wrong.push(`network ${net.name}: gateway ${net.ipam.gateway} is not on ${net.device}`);
    }
    if (!table.includes(`"${net.device}"`)) wrong.push(`network ${net.name}: no rule for ${net.device} in table inet ${n.nftTable}`);
  }
  return wrong;
}

async function checkSandbox(state: SavedState, sb: SavedState['sandboxes'][number], table: string): Promise<string[]> {
  const wrong: string[] = [];
  if (sb.mode !== 'networks' || sb.netns === undefined) return wrong;
  if (!existsSync(`/run/netns/${sb.netns}`)) return [`sandbox ${sb.name}: namespace ${sb.netns} is missing`];
  const inside = (await ip<Link[]>(['addr', 'show'], sb.netns)) ?? [];
  for (const [net, a] of Object.entries(sb.attachments)) {
    const device = state.networks.find((x) => x.name === net)?.device;
    if (!inside.some((l) => l.ifname === a.ifname && l.addr_info?.some((x) => x.local === a.ipv4))) wrong.push(`sandbox ${sb.name}: ${a.ifname} without ${a.ipv4} on ${net}`);
    const host = (await ip<Link[]>(['link', 'show', 'dev', a.hostIf]))?.[0];
    if (host?.master !== device) wrong.push(`sandbox ${sb.name}: ${a.hostIf} is not a port of ${device}`);
  }
  const routes = (await ip<{ dst: string }[]>(['route', 'show'], sb.netns)) ?? [];
  if (Object.keys(sb.attachments).length > 0 && !routes.some((r) => r.dst === 'default')) wrong.push(`sandbox ${sb.name}: no default route`);
  for (const p of sb.ports ?? []) {
    if (!table.includes(`dport ${p.hostPort} `)) wrong.push(`sandbox ${sb.name}: no DNAT for host port ${p.hostPort}`);
    if (!(await held(p.hostPort))) wrong.push(`sandbox ${sb.name}: host port ${p.hostPort} is not held`);
  }
  const vips = (state.services ?? []).filter((s) => s.vip !== undefined && s.network in sb.attachments);
  const lb = vips.length === 0 ? '' : await nft(['list', 'table', 'ip', 'tsnet_lb'], sb.netns);
  for (const s of vips) if (!lb.includes(s.vip!)) wrong.push(`sandbox ${sb.name}: VIP ${s.vip} of ${s.name} is not in its tsnet_lb table`);
  return wrong;
}

async function checkServices(state: SavedState, n: RunNames, table: string): Promise<string[]> {
  const wrong: string[] = [];
  for (const svc of state.services ?? []) {
    for (const p of svc.publish ?? []) if (!(await held(p.hostPort))) wrong.push(`service ${svc.name}: host port ${p.hostPort} is not held`);
    if (svc.replicas === undefined) continue;
    const want = Array.from({ length: svc.replicas.count }, (_, i) => `${svc.name}.${i + 1}`);
    const have = state.sandboxes.filter((s) => s.replicaOf === svc.name).map((s) => s.name).sort();
    if (JSON.stringify(have) !== JSON.stringify(want.sort())) wrong.push(`service ${svc.name}: replicas ${have.join(',')} instead of ${want.join(',')}`);
    const tasks = svc.tasks.map((t) => t.sandbox).sort();
    if (JSON.stringify(tasks) !== JSON.stringify(want)) wrong.push(`service ${svc.name}: tasks of ${tasks.join(',')} instead of ${want.join(',')}`);
    for (const name of want) {
      const ns = `${n.netnsPrefix}${name}`;
      const pids = existsSync(`/run/netns/${ns}`) ? (await run(systemTool('ip'), ['netns', 'pids', ns])).stdout.split('\n').filter(Boolean) : [];
      const mine = pids.filter((p) => cmdline(Number(p)).includes(n.marker));
      if (mine.length !== 1) wrong.push(`service ${svc.name}: ${mine.length} replica processes in ${name}`);
    }
    for (const p of svc.publish ?? []) if (svc.replicas.count > 0 && !table.includes(`dport ${p.hostPort} `)) wrong.push(`service ${svc.name}: no DNAT for ${p.hostPort}`);
  }
  return wrong;
}

const cmdline = (pid: number): string => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return '';
  }
};

/** The kernel side of every network, sandbox and service of the state, as the state says. */
export async function kernelMatches(state: SavedState, n: RunNames): Promise<string[]> {
  const table = await nft(['list', 'table', 'inet', n.nftTable]);
  if (table === '') return [`table inet ${n.nftTable} is missing`];
  const wrong = [...(await checkNetworks(state, n, table)), ...(await checkServices(state, n, table))];
  for (const sb of state.sandboxes) wrong.push(...(await checkSandbox(state, sb, table)));
  return wrong;
}

/** Namespaces, their files, links with the owner's alias and replica processes the state does not name. */
export async function leftovers(state: SavedState, n: RunNames): Promise<string[]> {
  const wrong: string[] = [];
  const netns = new Set(state.sandboxes.flatMap((s) => (s.netns === undefined ? [] : [s.netns])));
  for (const ns of readdirSync('/run/netns').filter((x) => x.startsWith(n.netnsPrefix))) if (!netns.has(ns)) wrong.push(`namespace ${ns} leaked`);
  for (const ns of readdirSync('/etc/netns').filter((x) => x.startsWith(n.netnsPrefix))) if (!netns.has(ns)) wrong.push(`files /etc/netns/${ns} leaked`);
  const links = new Set([...state.networks.flatMap((x) => (x.device === undefined ? [] : [x.device])), ...state.sandboxes.flatMap((s) => Object.values(s.attachments).map((a) => a.hostIf))]);
  for (const l of (await ip<Link[]>(['link', 'show'])) ?? []) if (l.ifalias === n.owner && !links.has(l.ifname)) wrong.push(`link ${l.ifname} leaked`);
  const tables = (await nft(['list', 'tables'])).split('\n').filter((l) => l.includes(n.nftTable));
  if (tables.some((l) => !/^table (inet|bridge) /.test(l))) wrong.push(`unexpected tables: ${tables.join('; ')}`);
  const replicaNs = [...netns].filter((ns) => state.sandboxes.some((s) => s.netns === ns && s.replicaOf !== undefined));
  const inReplicas = new Set<string>();
  for (const ns of replicaNs) for (const p of (await run(systemTool('ip'), ['netns', 'pids', ns])).stdout.split('\n').filter(Boolean)) inReplicas.add(p);
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    if (cmdline(Number(pid)).startsWith(`sleep ${n.marker}`) && !inReplicas.has(pid)) wrong.push(`replica process ${pid} (${cmdline(Number(pid)).trim()}) leaked`);
  }
  return wrong;
}

/** Pids of every process running `sleep MARKER` (for the run's own clean-up). */
export const markedPids = (marker: string): number[] =>
  readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p) && cmdline(Number(p)).startsWith(`sleep ${marker}`))
    .map(Number);
