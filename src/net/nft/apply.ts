import { systemTool } from '../tools.js';
import { spawn } from 'node:child_process';

/**
 * Feeds a whole ruleset file to `nft -f -` (inside the named namespace `netns` if given): one
 * kernel transaction, applied whole or not at all.
 */
export function nftApply(ruleset: string, netns?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const [cmd, ...args] = netns === undefined ? [systemTool('nft'), '-f', '-'] : [systemTool('ip'), 'netns', 'exec', netns, systemTool('nft'), '-f', '-'];
    const child = spawn(cmd!, args, { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', (err) => reject(new Error(`nft: ${err.message}`, { cause: err })));
    // An nft that dies before reading (no such namespace) closes the pipe: its exit reports why.
    child.stdin.on('error', () => {});
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`nft -f: ${stderr.trim() || `exit ${code}`}`))));
    child.stdin.end(ruleset);
  });
}
