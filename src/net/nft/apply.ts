import { systemTool } from '../tools.js';
import { spawn } from 'node:child_process';

/** Feeds a whole ruleset file to `nft -f -`: one kernel transaction, applied whole or not at all. */
export function nftApply(ruleset: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(systemTool('nft'), ['-f', '-'], { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', (err) => reject(new Error(`nft: ${err.message}`, { cause: err })));
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`nft -f: ${stderr.trim() || `exit ${code}`}`))));
    child.stdin.end(ruleset);
  });
}
