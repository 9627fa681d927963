import { systemTool } from '../../net/tools.js';
import { spawn } from 'node:child_process';
import type { Command } from 'commander';
import { call } from '../../control/client.js';
import { many, printJson, printTable } from './output.js';

interface SandboxView {
  Id: string;
  Name: string;
  Hostname: string;
  Mode: string;
  NetnsName: string | null;
  Networks: Record<string, { IPv4Address: string }>;
  Env: Record<string, string>;
}

/** `NET[:ip=…,ip6=…,alias=…]` as --network takes it. */
function parseNetworkFlag(text: string): { network: string; ip?: string; ip6?: string; aliases?: string[] } {
  const [network = '', rest] = text.startsWith('container:') ? [text, undefined] : (text.split(/:(.*)/s) as [string, string | undefined]);
  const out: { network: string; ip?: string; ip6?: string; aliases?: string[] } = { network };
  for (const kv of rest === undefined || rest === '' ? [] : rest.split(',')) {
    const [k, v] = kv.split('=') as [string, string | undefined];
    if (v === undefined || v === '') throw new Error(`--network ${text}: ${JSON.stringify(kv)} is not KEY=VALUE`);
    if (k === 'ip') out.ip = v;
    else if (k === 'ip6') out.ip6 = v;
    else if (k === 'alias') out.aliases = [...(out.aliases ?? []), v];
    else throw new Error(`--network ${text}: unknown key ${JSON.stringify(k)} (ip, ip6, alias)`);
  }
  return out;
}

export function sandboxCommand(program: Command): void {
  const socket = (): string => program.opts<{ socket: string }>().socket;
  const sb = program.command('sandbox').description('manage sandboxes (network namespaces wired to networks)');

  sb.command('create')
    .requiredOption('--name <name>', 'sandbox name')
    .option('--network <net[:ip=…,alias=…]>', 'network to join; repeatable (default bridge)', many)
    .option('--hostname <name>', 'hostname (default: the short id)')
    .option('--alias <alias>', 'alias on every network; repeatable', many)
    .option('--dns <ip>', 'upstream DNS server for this sandbox; repeatable', many)
    .option('--dns-search <domain>', 'search domain; repeatable', many)
    .option('--dns-option <option>', 'resolv.conf option; repeatable', many)
    .option('--link <name[:alias]>', 'hosts entry and environment for another sandbox; repeatable', many)
    .option('-p, --publish <[ip:][hostPort:]port[/proto]>', 'publish a port; repeatable', many)
    .option('-P, --publish-all', 'publish every --expose port to a free host port')
    .option('--expose <port[/proto]>', 'a port the sandbox serves; repeatable', many)
    .option('--netns <path>', 'adopt this network namespace instead of making one')
    .option('--pid <pid>', 'adopt the network namespace of this process')
    .action(async (o: { name: string; network?: string[]; hostname?: string; alias?: string[]; dns?: string[]; dnsSearch?: string[]; dnsOption?: string[]; link?: string[]; netns?: string; pid?: string; publish?: string[]; publishAll?: boolean; expose?: string[] }) => {
      if (o.netns !== undefined && o.pid !== undefined) throw new Error('--netns and --pid cannot be used together');
      const pid = o.pid === undefined ? undefined : Number(o.pid);
      if (pid !== undefined && (!Number.isInteger(pid) || pid < 1)) throw new Error(`--pid ${o.pid}: not a process id`);
      const res = await call<SandboxView>(socket(), 'POST', '/sandboxes/create', {
        name: o.name,
        networks: o.network?.map(parseNetworkFlag),
        hostname: o.hostname,
        aliases: o.alias,
        dns: o.dns,
        dnsSearch: o.dnsSearch,
        dnsOptions: o.dnsOption,
        links: o.link,
        publish: o.publish,
        publishAll: o.publishAll === true,
        expose: o.expose,
        netns: o.netns,
        pid,
      });
      process.stdout.write(res.Id + '\n');
    });

  sb.command('ls')
    .alias('list')
    .option('--format <format>', '"json" for JSON')
    .action(async (o: { format?: string }) => {
      const list = await call<SandboxView[]>(socket(), 'GET', '/sandboxes');
      if (o.format === 'json') return printJson(list);
      printTable(
        ['SANDBOX ID', 'NAME', 'NETWORKS'],
        list.map((s) => [s.Id.slice(0, 12), s.Name, Object.entries(s.Networks).map(([n, a]) => `${n}=${a.IPv4Address}`).join(',') || s.Mode]),
      );
    });

  sb.command('port <sandbox>')
    .description('list published ports, as docker port does')
    .action(async (ref: string) => {
      const s = await call<{ Ports: { HostIp: string; HostPort: number; ContainerPort: number; Protocol: string }[] }>(socket(), 'GET', `/sandboxes/${encodeURIComponent(ref)}`);
      for (const p of s.Ports) process.stdout.write(`${p.ContainerPort}/${p.Protocol} -> ${p.HostIp}:${p.HostPort}\n`);
    });

  sb.command('inspect <sandbox...>').action(async (refs: string[]) => {
    printJson(await Promise.all(refs.map((r) => call(socket(), 'GET', `/sandboxes/${encodeURIComponent(r)}`))));
  });

  sb.command('rm <sandbox...>')
    .alias('remove')
    .action(async (refs: string[]) => {
      for (const r of refs) {
        await call(socket(), 'DELETE', `/sandboxes/${encodeURIComponent(r)}`);
        process.stdout.write(r + '\n');
      }
    });

  program
    .command('exec <sandbox> <command...>')
    .description("run a command in a sandbox's namespace with its resolv.conf, hosts and hostname (as ip netns exec does)")
    .action(async (ref: string, command: string[]) => {
      const s = await call<SandboxView>(socket(), 'GET', `/sandboxes/${encodeURIComponent(ref)}`);
      const env = Object.entries(s.Env).map(([k, v]) => `${k}=${v}`);
      // A host-mode sandbox is the host's namespace and files: the command runs as it is.
      // Elsewhere a UTS namespace of its own carries the sandbox's hostname, as a container's does.
      const argv =
        s.NetnsName === null
          ? ['env', ...env, ...command]
          : [systemTool('ip'), 'netns', 'exec', s.NetnsName, 'unshare', '--uts', '--', 'sh', '-c', 'hostname "$1" && shift && exec env "$@"', 'sh', s.Hostname, ...env, ...command];
      const child = spawn(argv[0]!, argv.slice(1), { stdio: 'inherit' });
      child.on('exit', (code, signal) => process.exit(code ?? (signal === null ? 1 : 128)));
    });
}
