// Several tsnet daemons as the nodes of one cluster, each in a network namespace standing for a
// host of its own: every node needs its own kernel view, since a swarm network has the same
// bridge names (and may have the same addresses) on every node. The hosts share a "LAN" (a bridge
// in one more namespace) on which the etcd members listen; the test's own namespace sees none of it.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { mkdtempSync, readlinkSync, realpathSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { BIN, removeNetns, removeNetnsStartingWith, tsnetCli, untilAnswers, type TestDaemon } from './daemon.js';
import { startEtcd, type TestEtcd } from './etcd.js';
import { owned, type Owner } from './ledger.js';

const run = promisify(execFile);

export interface ClusterHostsOptions {
  /** How many hosts (daemons); 3 by default. */
  hosts?: number;
  /** How many etcd members; 1 by default. */
  etcdMembers?: 1 | 3;
  /** The daemons' `--lease-ttl` in seconds; 3 by default. */
  leaseTtl?: number;
  /** `file`: each daemon on its own embedded store, as a single host runs (the etcd still starts, unused). */
  store?: 'etcd' | 'file';
}

export interface ClusterHost extends Pick<TestDaemon, 'tsnet' | 'fails'> {
  /** Node name (`--node`): n1, n2, … */
  name: string;
  /** The host's namespace (under /run/netns). */
  netns: string;
  /** Its address on the LAN (`--advertise-addr`). */
  address: string;
  /** The control socket: a path, so reachable from the test's namespace. */
  socket: string;
  stateDir: string;
  netnsPrefix: string;
  nftTable: string;
  /** Device of the default bridge network. */
  bridge: string;
  /** Its WireGuard interface (`--wg-ifname`): tagged, since wireguard-go's sockets share one directory on the machine. */
  wgIfname: string;
  /** Subnet of the default bridge network. */
  bip: string;
  /** Starts the daemon (again) inside the host; resolves once it answers /_ping (within `timeoutMs`, 10 s by default). */
  start(extraArgs?: string[], timeoutMs?: number): Promise<void>;
  /** SIGTERM, and waits for the exit. */
  stop(): Promise<void>;
  /** The running daemon's pid (undefined before the first start). */
  pid(): number | undefined;
  /** SIGKILL, and waits for the exit. */
  kill9(): Promise<void>;
  /** What the daemon has logged (JSON lines, warn and above), over all its starts. */
  logs(): string;
  /** `dig +short` for NAME at 127.0.0.11 inside sandbox `sandbox` of this host; the lines sorted. */
  dig(sandbox: string, name: string, type?: string): Promise<string[]>;
  /** Runs `cmd` inside the host's namespace; rejects with stderr on a non-zero exit. */
  exec(...cmd: string[]): Promise<string>;
}

export interface ClusterHosts {
  hosts: ClusterHost[];
  etcd: TestEtcd;
  /** The daemons' `--store`: etcd://ADDR:PORT,… of every member. */
  storeUrl: string;
  /** The namespace holding the LAN bridge and the etcd members. */
  lan: string;
  /** The random part of every name made for this cluster. */
  tag: string;
  /** A /24 no other subnet of this process's clusters has (LAN, default bridges), e.g. for a swarm network. */
  subnet(): string;
}

// Only subnets handed out in this process can collide with ours: the LAN and the hosts live in
// namespaces of their own, out of reach of any route on the machine (daemon.ts's 10.100-249 ones).
const usedPrefixes = new Set<string>();

/** `10.X.Y` of a /24 this process has not handed out yet. */
function freshPrefix(): string {
  for (;;) {
    const p = `10.${randomInt(200, 251)}.${randomInt(0, 256)}`;
    if (!usedPrefixes.has(p)) return usedPrefixes.add(p), p;
  }
}

const ipIn = (netns: string, ...args: string[]): Promise<unknown> => run('ip', ['-n', netns, ...args]);

/** The LAN: bridge `lan0` in namespace `lan`, carrying the etcd members' `addresses`. */
async function makeLan(lan: string, addresses: string[]): Promise<void> {
  await run('ip', ['netns', 'add', lan]);
  await ipIn(lan, 'link', 'set', 'lo', 'up');
  await ipIn(lan, 'link', 'add', 'lan0', 'type', 'bridge');
  for (const a of addresses) await ipIn(lan, 'addr', 'add', `${a}/24`, 'dev', 'lan0');
  await ipIn(lan, 'link', 'set', 'lan0', 'up');
}

/** Host namespace `netns`, plugged into the LAN by a veth (`eth0` inside, `port` on lan0) at `address`. */
async function makeHost(lan: string, netns: string, port: string, address: string): Promise<void> {
  await run('ip', ['netns', 'add', netns]);
  // Made inside the LAN namespace and moved straight on: no name ever appears in the test's own.
  await ipIn(lan, 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns);
  await ipIn(lan, 'link', 'set', port, 'master', 'lan0', 'up');
  await ipIn(netns, 'link', 'set', 'lo', 'up');
  await ipIn(netns, 'addr', 'add', `${address}/24`, 'dev', 'eth0');
  await ipIn(netns, 'link', 'set', 'eth0', 'up');
}

const exited = (c: ChildProcess): Promise<void> => (c.exitCode !== null || c.signalCode !== null ? Promise.resolve() : new Promise((r) => c.once('exit', () => r())));

/** Throws unless `pid` is a node process inside namespace `netns`: the one a kill must reach. */
function assertNodeIn(pid: number, netns: string): void {
  const exe = readlinkSync(`/proc/${pid}/exe`);
  const its = readlinkSync(`/proc/${pid}/ns/net`);
  const want = `net:[${statSync(`/run/netns/${netns}`).ino}]`;
  if (exe !== realpathSync(process.execPath) || its !== want) throw new Error(`daemon pid ${pid} is ${exe} in ${its}, not node in ${netns} (${want})`);
}

interface HostPlan {
  n: number;
  tag: string;
  netns: string;
  address: string;
  dir: string;
  bip: string;
  storeUrl: string;
  leaseTtl: number;
  store: 'etcd' | 'file';
}

/** Host n's daemon: names of its own, started on demand inside its namespace. */
function clusterHost({ n, tag, netns, address, dir, bip, storeUrl, leaseTtl, store }: HostPlan, children: Set<ChildProcess>): ClusterHost {
  const name = `n${n}`;
  const socket = join(dir, `${name}.sock`);
  const stateDir = join(dir, name);
  const netnsPrefix = `tsnet-c${tag}${n}-`;
  const nftTable = `tsnet_c${tag}${n}`;
  const bridge = `tsc${tag}${n}`;
  const wgIfname = `tsw${tag}${n}`;
  let child: ChildProcess | undefined;
  let logs = '';
  const start = async (extraArgs: string[] = [], timeoutMs?: number): Promise<void> => {
    const daemon = ['daemon', '--state-dir', stateDir, '--upstream', '127.0.0.1:1', '--bridge', bridge, '--bip', bip, '--nft-table', nftTable, '--netns-prefix', netnsPrefix, '--wg-ifname', wgIfname, '--log-level', 'warn'];
    const cluster = store === 'file' ? [] : ['--store', storeUrl, '--node', name, '--advertise-addr', address, '--lease-ttl', String(leaseTtl)];
    // nsenter, not `ip netns exec`: that one gives the daemon a mount namespace of its own, where
    // the sandbox namespaces it mounts under /run/netns would stay, out of reach of `tsnet exec`,
    // dig() and the teardown. nsenter execs node, so the pid is the daemon's.
    const c = spawn('nsenter', [`--net=/run/netns/${netns}`, '--', process.execPath, BIN, '--socket', socket, ...daemon, ...cluster, ...extraArgs], { stdio: ['ignore', 'pipe', 'pipe'] });
    child = c;
    children.add(c);
    c.once('exit', () => children.delete(c));
    let stderr = '';
    c.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    c.stdout!.on('data', (d: Buffer) => (logs += d.toString()));
    await untilAnswers(c, socket, () => stderr, timeoutMs);
    assertNodeIn(c.pid!, netns);
  };
  const signal = async (sig: NodeJS.Signals): Promise<void> => {
    const c = child!;
    c.kill(sig);
    await exited(c);
  };
  return {
    name,
    netns,
    address,
    socket,
    stateDir,
    netnsPrefix,
    nftTable,
    bridge,
    wgIfname,
    bip,
    start,
    stop: () => signal('SIGTERM'),
    pid: () => child?.pid,
    kill9: async () => {
      await signal('SIGKILL');
      // As the daemon would have on a clean exit: the next start must not meet the old file.
      rmSync(socket, { force: true });
    },
    logs: () => logs,
    ...tsnetCli(socket),
    dig: async (sandbox, qname, type = 'A') => {
      const { stdout } = await run('ip', ['netns', 'exec', `${netnsPrefix}${sandbox}`, 'dig', '+short', '+time=1', '+tries=2', '@127.0.0.11', qname, type], { timeout: 10_000 });
      return stdout.split('\n').filter(Boolean).sort();
    },
    exec: async (...cmd) => (await run('ip', ['netns', 'exec', netns, ...cmd], { timeout: 20_000 })).stdout,
  };
}

/**
 * `hosts` host namespaces on one LAN with an etcd of `etcdMembers` members on it, and a daemon
 * (not yet started) per host, pointed at that etcd. Everything is removed when the test ends, pass
 * or fail, including sandbox namespaces a daemon killed mid-change left behind.
 */
export async function startClusterHosts(t: Owner, { hosts = 3, etcdMembers = 1, leaseTtl = 3, store = 'etcd' }: ClusterHostsOptions = {}): Promise<ClusterHosts> {
  const tag = randomBytes(3).toString('hex');
  // The dir's tag is a long one: the leftover check only takes those as a temp dir's owner.
  owned(t.title, tag, `cluster${tag}`);
  const dir = mkdtempSync(join(tmpdir(), `tsnet-cluster${tag}-`));
  const lan = `tsl${tag}`;
  const numbers = Array.from({ length: hosts }, (_, i) => i + 1);
  const hostNs = numbers.map((n) => `tsh${tag}-${n}`);
  // Registered first, so run last: after the daemons' and etcd's own teardowns.
  t.teardown(async () => {
    for (const n of numbers) await removeNetnsStartingWith(`tsnet-c${tag}${n}-`);
    for (const ns of [...hostNs, lan]) await removeNetns(ns);
    rmSync(dir, { recursive: true, force: true });
  });
  const lanPrefix = freshPrefix();
  const etcdHosts = Array.from({ length: etcdMembers }, (_, i) => `${lanPrefix}.${100 + i}`);
  await makeLan(lan, etcdHosts);
  for (const n of numbers) await makeHost(lan, hostNs[n - 1]!, `h${n}`, `${lanPrefix}.${n}`);
  const etcd = await startEtcd(t, { netns: lan, hosts: etcdHosts });
  const storeUrl = `etcd://${etcd.endpoints.map((e) => new URL(e).host).join(',')}`;
  // One default-bridge subnet for every host: each is its own kernel, as a real node would be.
  const bip = `${freshPrefix()}.0/24`;
  const children = new Set<ChildProcess>();
  t.teardown(async () => {
    const running = [...children];
    for (const c of running) c.kill('SIGKILL');
    await Promise.all(running.map(exited));
  });
  const plan = (n: number): HostPlan => ({ n, tag, netns: hostNs[n - 1]!, address: `${lanPrefix}.${n}`, dir, bip, storeUrl, leaseTtl, store });
  return { hosts: numbers.map((n) => clusterHost(plan(n), children)), etcd, storeUrl, lan, tag, subnet: () => `${freshPrefix()}.0/24` };
}
