import { systemTool } from '../tools.js';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * Runs iproute2 commands as one `ip -batch -` process (optionally `-n NETNS`): one fork per
 * operation instead of one per command. Chosen over rtnetlink from Node because the `netlink`
 * npm package needs a native build and covers little of what is needed (veth peers in other
 * namespaces, bridge ports); kernel-notes.md measured 16–60 ms per container this way.
 * `-force` is not used: the first failing command stops the batch and its message is thrown.
 */
export function ipBatch(commands: readonly string[][], netns?: string): Promise<void> {
  if (commands.length === 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const args = [...(netns === undefined ? [] : ['-n', netns]), '-batch', '-'];
    const child = spawn(systemTool('ip'), args, { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    // An ip that dies before reading (no such namespace) closes the pipe: its exit reports why.
    child.stdin.on('error', () => {});
    child.on('exit', (code) =>
      code === 0
        ? resolve()
        : reject(new Error(`ip ${netns === undefined ? '' : `-n ${netns} `}-batch: ${stderr.trim() || `exit ${code}`}`)),
    );
    child.stdin.end(commands.map((c) => c.join(' ')).join('\n') + '\n');
  });
}

/** `ip -j ...` output, parsed. */
export async function ipJson<T>(args: string[], netns?: string): Promise<T> {
  const { stdout } = await run(systemTool('ip'), [...(netns === undefined ? [] : ['-n', netns]), '-j', ...args]);
  return (stdout.trim() === '' ? [] : JSON.parse(stdout)) as T;
}

/** Whether a link of that name exists in the host namespace. */
export async function linkExists(name: string): Promise<boolean> {
  try {
    await run(systemTool('ip'), ['link', 'show', 'dev', name]);
    return true;
  } catch {
    return false;
  }
}
