import type { Command } from 'commander';
import { call } from '../../control/client.js';
import { keyValues, many, printJson, printTable } from './output.js';

type DockerNetwork = { Id: string; Name: string; Driver: string; Scope: string };

export function networkCommand(program: Command): void {
  const socket = (): string => program.opts<{ socket: string }>().socket;
  const net = program.command('network').description('manage networks (Docker-compatible flags)');

  net
    .command('create <name>')
    .option('-d, --driver <driver>', 'network driver', 'bridge')
    .option('--subnet <cidr>', 'subnet (one IPv4 and/or one IPv6); repeatable', many)
    .option('--gateway <ip>', 'gateway of the subnet of its family; repeatable', many)
    .option('--ip-range <cidr>', 'allocate container addresses from this part of the subnet')
    .option('--internal', 'no outside access')
    .option('--scope <scope>', 'local (this node only) or swarm (every node of the cluster; an overlay always is)')
    .option('--attachable', 'overlay: sandboxes may join it by hand, not only service replicas')
    .option('-o, --opt <key=value>', 'driver options (com.docker.network.driver.mtu, com.docker.network.bridge.name, encrypted); repeatable', many)
    .option('--label <key=value>', 'labels; repeatable', many)
    .action(async (name: string, o: { driver: string; subnet?: string[]; gateway?: string[]; ipRange?: string; internal?: boolean; scope?: string; attachable?: boolean; opt?: string[]; label?: string[] }) => {
      const v4 = (l?: string[]) => l?.find((x) => !x.includes(':'));
      const v6 = (l?: string[]) => l?.find((x) => x.includes(':'));
      const config = [
        { Subnet: v4(o.subnet), Gateway: v4(o.gateway), IPRange: o.ipRange },
        { Subnet: v6(o.subnet), Gateway: v6(o.gateway) },
      ].filter((c) => c.Subnet !== undefined || c.Gateway !== undefined || ('IPRange' in c && c.IPRange !== undefined));
      const res = await call<{ Id: string }>(socket(), 'POST', '/networks/create', {
        Name: name,
        Driver: o.driver,
        Internal: o.internal === true,
        ...(o.scope === undefined ? {} : { Scope: o.scope }),
        ...(o.attachable === true ? { Attachable: true } : {}),
        IPAM: { Driver: 'default', Config: config },
        Options: keyValues(o.opt, '--opt'),
        Labels: keyValues(o.label, '--label'),
      });
      process.stdout.write(res.Id + '\n');
    });

  net
    .command('ls')
    .alias('list')
    .option('--format <format>', '"json" for JSON')
    .action(async (o: { format?: string }) => {
      const list = await call<DockerNetwork[]>(socket(), 'GET', '/networks');
      if (o.format === 'json') return printJson(list);
      printTable(['NETWORK ID', 'NAME', 'DRIVER', 'SCOPE'], list.map((n) => [n.Id.slice(0, 12), n.Name, n.Driver, n.Scope]));
    });

  net.command('inspect <network...>').action(async (refs: string[]) => {
    printJson(await Promise.all(refs.map((r) => call(socket(), 'GET', `/networks/${encodeURIComponent(r)}`))));
  });

  net
    .command('rm <network...>')
    .alias('remove')
    .action(async (refs: string[]) => {
      for (const r of refs) {
        await call(socket(), 'DELETE', `/networks/${encodeURIComponent(r)}`);
        process.stdout.write(r + '\n');
      }
    });

  net
    .command('prune')
    .option('-f, --force', 'do not ask (tsnet never asks)')
    .action(async () => {
      const res = await call<{ NetworksDeleted: string[] }>(socket(), 'POST', '/networks/prune');
      if (res.NetworksDeleted.length > 0) process.stdout.write(`Deleted Networks:\n${res.NetworksDeleted.join('\n')}\n`);
    });

  net
    .command('connect <network> <sandbox>')
    .option('--ip <ip>', 'IPv4 address')
    .option('--ip6 <ip>', 'IPv6 address')
    .option('--alias <alias>', 'network-scoped alias; repeatable', many)
    .action(async (network: string, sandbox: string, o: { ip?: string; ip6?: string; alias?: string[] }) => {
      await call(socket(), 'POST', `/networks/${encodeURIComponent(network)}/connect`, {
        Container: sandbox,
        EndpointConfig: { IPAMConfig: { IPv4Address: o.ip, IPv6Address: o.ip6 }, Aliases: o.alias },
      });
    });

  // Node-wide: one WireGuard interface and key per node carry every encrypted overlay on it, and
  // the private key never leaves its node, so each node rotates its own (run it on each node).
  net
    .command('rotate-key')
    .description("rotate this node's WireGuard key (every encrypted overlay on the node uses it); peers take the new public key from the store")
    .action(async () => {
      const res = await call<{ Node: string; PublicKey: string }>(socket(), 'POST', '/networks/rotate-key');
      process.stdout.write(`${res.Node} ${res.PublicKey}\n`);
    });

  net.command('disconnect <network> <sandbox>').action(async (network: string, sandbox: string) => {
    await call(socket(), 'POST', `/networks/${encodeURIComponent(network)}/disconnect`, { Container: sandbox });
  });
}
