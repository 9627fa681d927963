import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { adopt, startPinned, stop, waitForDns } from './procs.js';

/** A running server under test: its pid (for RSS) and how to stop it. */
export interface Running {
  pid: number;
  stop(): void;
}

export interface PeerContext {
  dir: string;
  /** Port of the upstream that answers `*.fwd.example`. */
  upstreamPort: number;
}

const ROOT = new URL('../..', import.meta.url).pathname;
/** The names every peer serves: the same three local records. */
export const LOCAL = { id: 'a1b2c3d4e5f6'.padEnd(64, '0'), v4: '172.30.0.2', v6: 'fd00:30::2', names: ['web', 'www'] };

async function started(pid: number | undefined, port: number): Promise<Running> {
  if (pid === undefined) throw new Error('process did not start');
  await waitForDns(port);
  return { pid, stop: () => stop(pid) };
}

export function echo(port: number): Promise<Running> {
  return started(startPinned(0, process.execPath, [join(ROOT, 'dist/bench/echo-server.js'), String(port)]).pid, port);
}

/** The echo floor with batched I/O (recvmmsg/sendmmsg in a worker thread): how far batching can go here (goal P1). */
export function batchedEcho(port: number): Promise<Running> {
  return started(startPinned(0, process.execPath, [join(ROOT, 'dist/bench/mmsg-echo.js'), String(port)]).pid, port);
}

/** tsnet-dns as the README starts it; `nodeFlags` go to node itself (V8's heap sizing). */
export function tsnet(ctx: PeerContext, port: number, nodeFlags: readonly string[] = [], extra: readonly string[] = []): Promise<Running> {
  const records = join(ctx.dir, 'tsnet-records.json');
  writeFileSync(
    records,
    JSON.stringify({
      networks: [{ name: 'app', subnet: '172.30.0.0/24', ipv6Subnet: 'fd00:30::/64' }],
      endpoints: [{ id: LOCAL.id, name: 'web', networks: { app: { ipv4: LOCAL.v4, ipv6: LOCAL.v6, aliases: ['www'] } } }],
    }),
  );
  const args = [...nodeFlags, join(ROOT, 'bin/tsnet-dns'), '--records', records, '--listen', `127.0.0.1:${port}`, '--upstream', `127.0.0.1:${ctx.upstreamPort}`, '--log-level', 'warn', '--cache-size', '100000', ...extra];
  return started(startPinned(0, process.execPath, args).pid, port);
}

/** dnsmasq: the upstream (on CPU 1), or a peer with local records and a forwarder. */
export function dnsmasq(ctx: PeerContext, port: number, opts: { cpu: number; cache: number; upstream: boolean }): Promise<Running> {
  const args = [
    '--keep-in-foreground',
    '--conf-file=/dev/null',
    `--port=${port}`,
    '--listen-address=127.0.0.1',
    '--bind-interfaces',
    '--no-resolv',
    '--no-hosts',
    '--user=root',
    '--pid-file=',
    `--cache-size=${opts.cache}`,
    '--dns-forward-max=1000',
  ];
  if (opts.upstream) args.push('--address=/fwd.example/127.0.0.99', '--local-ttl=300');
  else args.push(`--host-record=${LOCAL.names.join(',')},${LOCAL.v4},${LOCAL.v6}`, `--server=/fwd.example/127.0.0.1#${ctx.upstreamPort}`, '--local-ttl=5');
  return started(startPinned(opts.cpu, 'dnsmasq', args).pid, port);
}

export function unbound(ctx: PeerContext, port: number): Promise<Running> {
  const conf = join(ctx.dir, 'unbound.conf');
  writeFileSync(
    conf,
    [
      'server:',
      '  interface: 127.0.0.1',
      `  port: ${port}`,
      '  num-threads: 1',
      '  do-daemonize: no',
      '  username: ""',
      '  chroot: ""',
      '  pidfile: ""',
      '  use-syslog: no',
      '  module-config: "iterator"',
      '  do-not-query-localhost: no',
      '  access-control: 127.0.0.0/8 allow',
      ...LOCAL.names.flatMap((n) => [`  local-data: "${n}. 5 IN A ${LOCAL.v4}"`, `  local-data: "${n}. 5 IN AAAA ${LOCAL.v6}"`]),
      'forward-zone:',
      '  name: "fwd.example"',
      `  forward-addr: 127.0.0.1@${ctx.upstreamPort}`,
    ].join('\n') + '\n',
  );
  return started(startPinned(0, 'unbound', ['-d', '-c', conf]).pid, port);
}

/**
 * aardvark-dns 1.4 (Podman's resolver). It forwards unknown names to /etc/resolv.conf's servers,
 * which here point off this machine, so it runs in a mount namespace whose resolv.conf names
 * loopback, and is asked only names it owns. It daemonizes and writes its pid file.
 */
export async function aardvark(ctx: PeerContext, port: number): Promise<Running> {
  const bin = '/usr/lib/podman/aardvark-dns';
  if (!existsSync(bin)) throw new Error(`${bin} is not installed (Debian package aardvark-dns)`);
  const config = join(ctx.dir, 'aardvark');
  mkdirSync(config, { recursive: true });
  writeFileSync(join(config, 'bench'), `127.0.0.1\n${LOCAL.id} ${LOCAL.v4} ${LOCAL.v6} ${LOCAL.names.join(',')}\n`);
  const resolv = join(ctx.dir, 'resolv.conf');
  writeFileSync(resolv, `nameserver 127.0.0.1\n`);
  execFileSync('unshare', ['-m', 'sh', '-c', `mount --bind ${resolv} /etc/resolv.conf && exec taskset -c 0 ${bin} --config ${config} -p ${port} run`], { stdio: 'ignore' });
  const pid = Number(readFileSync(join(config, 'aardvark.pid'), 'utf8').trim());
  adopt(pid);
  return started(pid, port);
}
