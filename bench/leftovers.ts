import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { ownerMark } from '../src/daemon/state.js';
import { systemTool } from '../src/net/tools.js';

const quietly = (fn: () => unknown): void => {
  try {
    fn();
  } catch {
    // already gone
  }
};

/**
 * Removes everything a bench's daemon made, from its names: processes in and namespaces with
 * `netnsPrefix`, the default bridge and every link carrying its mark, its nft tables, `dir`.
 */
export function removeLeftovers(o: { dir: string; netnsPrefix: string; defaultBridge: string; nftTable: string }): void {
  const ip = (...args: string[]): string => execFileSync(systemTool('ip'), args, { stdio: ['ignore', 'pipe', 'ignore'] }).toString();
  for (const ns of ip('netns', 'list').split('\n').map((l) => l.split(' ')[0]!).filter((n) => n.startsWith(o.netnsPrefix))) {
    quietly(() => ip('netns', 'pids', ns).split('\n').filter(Boolean).forEach((pid) => process.kill(Number(pid), 'SIGKILL')));
    quietly(() => ip('netns', 'del', ns));
    rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
  }
  // Every link the daemon makes carries its mark as its alias, saved or not.
  const mark = ownerMark(join(o.dir, 'state'));
  let devices = [o.defaultBridge];
  quietly(() => {
    const links = JSON.parse(ip('-j', 'link', 'show')) as { ifname: string; ifalias?: string }[];
    devices = [...devices, ...links.filter((l) => l.ifalias === mark).map((l) => l.ifname)];
  });
  for (const dev of new Set(devices)) quietly(() => ip('link', 'del', dev));
  for (const family of ['inet', 'bridge']) quietly(() => execFileSync(systemTool('nft'), ['delete', 'table', family, o.nftTable], { stdio: 'ignore' }));
  rmSync(o.dir, { recursive: true, force: true });
}
