import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
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
 * `netnsPrefix`, the default bridge and every bridge its state names, its nft tables, `dir`.
 */
export function removeLeftovers(o: { dir: string; netnsPrefix: string; defaultBridge: string; nftTable: string }): void {
  const ip = (...args: string[]): string => execFileSync(systemTool('ip'), args, { stdio: ['ignore', 'pipe', 'ignore'] }).toString();
  for (const ns of ip('netns', 'list').split('\n').map((l) => l.split(' ')[0]!).filter((n) => n.startsWith(o.netnsPrefix))) {
    quietly(() => ip('netns', 'pids', ns).split('\n').filter(Boolean).forEach((pid) => process.kill(Number(pid), 'SIGKILL')));
    quietly(() => ip('netns', 'del', ns));
    rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
  }
  let devices = [o.defaultBridge];
  quietly(() => {
    const state = JSON.parse(readFileSync(join(o.dir, 'state', 'state.json'), 'utf8')) as { networks: { device?: string }[] };
    devices = [...devices, ...state.networks.flatMap((n) => (n.device === undefined ? [] : [n.device]))];
  });
  for (const dev of new Set(devices)) quietly(() => ip('link', 'del', dev));
  for (const family of ['inet', 'bridge']) quietly(() => execFileSync(systemTool('nft'), ['delete', 'table', family, o.nftTable], { stdio: 'ignore' }));
  rmSync(o.dir, { recursive: true, force: true });
}
