import { systemTool } from '../tools.js';
import { runTool } from '../exec/tool-runner.js';

/**
 * Feeds a whole ruleset file to `nft -f -` (inside the named namespace `netns` if given): one
 * kernel transaction, applied whole or not at all.
 */
export async function nftApply(ruleset: string, netns?: string): Promise<void> {
  const [cmd, ...args] = netns === undefined ? [systemTool('nft'), '-f', '-'] : [systemTool('ip'), 'netns', 'exec', netns, systemTool('nft'), '-f', '-'];
  const r = await runTool(cmd!, args, { input: ruleset });
  if (r.error !== undefined) throw new Error(`nft: ${r.error}`);
  if (r.code !== 0) throw new Error(`nft -f: ${r.stderr.trim() || `exit ${r.code}`}`);
}
