import { inNamespace } from '../link/ip.js';
import { runTool } from '../exec/tool-runner.js';

/**
 * Feeds a whole ruleset file to `nft -f -` (inside the named namespace `netns` if given): one
 * kernel transaction, applied whole or not at all.
 */
export async function nftApply(ruleset: string, netns?: string): Promise<void> {
  const r = await runTool(...inNamespace(netns, 'nft', ['-f', '-']), { input: ruleset });
  if (r.error !== undefined) throw new Error(`nft: ${r.error}`);
  if (r.code !== 0) throw new Error(`nft -f: ${r.stderr.trim() || `exit ${r.code}`}`);
}
