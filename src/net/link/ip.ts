import { systemTool } from '../tools.js';
import { ifNameToIndex } from '../../netns/libc.js';
import { namedNetns } from '../../netns/paths.js';
import { runTool, toolOutput } from '../exec/tool-runner.js';

export interface BatchOptions {
  /** `bridge` for FDB entries; `ip` by default. */
  tool?: 'ip' | 'bridge';
  /** Go on past failing commands and resolve whatever they say (deleting what may be gone already). */
  force?: boolean;
}

/**
 * Runs iproute2 commands as one `ip -batch -` process (optionally `-n NETNS`): one fork per
 * operation instead of one per command. Chosen over rtnetlink from Node because the `netlink`
 * npm package needs a native build and covers little of what is needed (veth peers in other
 * namespaces, bridge ports); kernel-notes.md measured 16–60 ms per container this way.
 * `-force` is not used: the first failing command stops the batch and its message is thrown.
 */
/**
 * `tool args` run inside named namespace `netns` (or here): through `nsenter --net`, which only
 * enters the network namespace. `ip -n` and `ip netns exec` also make a mount namespace of their
 * own, copying every mount, so their cost grows with the sandboxes: measured 2.1 ms per `ip -n`
 * with 10 namespaces and 5.1 ms with 800, 4.2 → 9.0 ms for `ip netns exec … nft`, against a
 * flat 3–4 ms through nsenter. (Replica commands still get `ip netns exec`: they need the
 * sandbox's /etc files bound over /etc.)
 */
export function inNamespace(netns: string | undefined, tool: string, args: readonly string[]): [string, string[]] {
  return netns === undefined ? [systemTool(tool), [...args]] : [systemTool('nsenter'), [`--net=${namedNetns(netns)}`, '--', systemTool(tool), ...args]];
}

export async function ipBatch(commands: readonly string[][], netns?: string, { tool = 'ip', force = false }: BatchOptions = {}): Promise<void> {
  if (commands.length === 0) return;
  const r = await runTool(...inNamespace(netns, tool, [...(force ? ['-force'] : []), '-batch', '-']), { input: commands.map((c) => c.join(' ')).join('\n') + '\n' });
  if (r.code === 0 || force) return;
  throw new Error(`${tool} ${netns === undefined ? '' : `-n ${netns} `}-batch: ${r.error ?? (r.stderr.trim() || `exit ${r.code}`)}`);
}

/** `ip -j ...` output, parsed. */
export async function ipJson<T>(args: string[], netns?: string, tool: 'ip' | 'bridge' = 'ip'): Promise<T> {
  const stdout = await toolOutput(...inNamespace(netns, tool, ['-j', ...args]));
  return (stdout.trim() === '' ? [] : JSON.parse(stdout)) as T;
}

/**
 * Whether a link of that name exists in the daemon's namespace. if_nametoindex(3), not `ip link
 * show dev`: iproute2 dumps every link to find one, 6.7 ms with 100 sandboxes and 38 ms with 1000.
 */
export const linkExists = (name: string): boolean => ifNameToIndex(name) !== 0;
