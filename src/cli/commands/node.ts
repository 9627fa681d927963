import type { Command } from 'commander';
import { call } from '../../control/client.js';
import { printJson, printTable } from './output.js';

interface NodeView {
  ID: string;
  Status: { State: string; Addr: string };
  OverlayPeers: string[];
}

export function nodeCommand(program: Command): void {
  const socket = (): string => program.opts<{ socket: string }>().socket;
  const node = program.command('node').description('the nodes of the cluster this daemon is in');
  node
    .command('ls')
    .description('list the nodes: NAME, ADDRESS, STATUS (ready, down), OVERLAY PEERS (the nodes it shares an overlay with)')
    .option('--format <format>', '"json" for JSON')
    .action(async (o: { format?: string }) => {
      let store = '';
      const list = await call<NodeView[]>(socket(), 'GET', '/nodes', undefined, (h) => (store = String(h['tsnet-store'] ?? '')));
      // A store that is down leaves the daemon with the list as it last saw it: said on stderr, so stdout stays the list.
      if (store.includes('health=down')) process.stderr.write(`the store (${store.split(';')[0]}) is down: this is the list as last seen\n`);
      if (o.format === 'json') return printJson(list);
      printTable(['NAME', 'ADDRESS', 'STATUS', 'OVERLAY PEERS'], list.map((n) => [n.ID, n.Status.Addr, n.Status.State, n.OverlayPeers.join(',') || '-']));
    });
  node
    .command('rm')
    .description('remove nodes that are down for good: the addresses they claimed, their sandbox records and local networks go from the store')
    .argument('<name...>')
    .action(async (names: string[]) => {
      for (const name of names) {
        await call(socket(), 'DELETE', `/nodes/${encodeURIComponent(name)}`);
        process.stdout.write(`${name}\n`);
      }
    });
}
