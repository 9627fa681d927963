import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { createInterface } from 'node:readline';

/**
 * Runs system tools (ip, bridge, nft, mount) for the daemon through one long-lived helper
 * process. Node forks a child from the calling thread, and the fork's cost grows with the
 * process's memory: measured here 1.6 ms per spawn at 50 MB and 2.2 ms at 140 MB of RSS, and 4.4 ms
 * each in a daemon holding 600 sandboxes, where spawns took 18 of 44 s of its thread and made
 * sandbox creation slow down as sandboxes piled up. The helper stays small, so its forks are
 * cheap and run beside the daemon's thread, which only writes a line and reads one back.
 *
 * Where the helper cannot run (sources run by tsx, where it has no built file), tools are
 * spawned directly.
 */

export interface ToolRequest {
  id: number;
  /** Absolute path of the tool. */
  cmd: string;
  args: string[];
  /** Written to the tool's stdin, which is then closed (stdin is /dev/null without it). */
  input?: string;
  /** Killed with SIGKILL past this. */
  timeoutMs?: number;
}

export interface ToolResult {
  id: number;
  /** The exit code; null when killed by a signal or never started. */
  code: number | null;
  signal?: string;
  stdout: string;
  stderr: string;
  /** Set when the tool could not be started at all. */
  error?: string;
}

export type ToolOutcome = Omit<ToolResult, 'id'>;

const HELPER = new URL('./helper.js', import.meta.url).pathname;
/** The namespace the daemon runs tools in: the helper must start in it, not inside a brief `inNetns`. */
const HOME_NETNS = statSync('/proc/thread-self/ns/net').ino;

/** Runs one command without the helper: the fallback, and the helper's own way of running one. */
export function spawnDirect(req: Omit<ToolRequest, 'id'>): Promise<ToolOutcome> {
  return new Promise((resolve) => {
    const child = spawn(req.cmd, req.args, { stdio: [req.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let settled = false;
    const timer = req.timeoutMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), req.timeoutMs);
    const finish = (o: Omit<ToolOutcome, 'stdout' | 'stderr'>): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ stdout, stderr, ...o });
    };
    child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', (e) => finish({ code: null, error: e.message }));
    child.on('close', (code, signal) => finish({ code, ...(signal === null ? {} : { signal }) }));
    // A process the command left running may hold its output open: the exit decides, soon after.
    child.on('exit', (code, signal) => setTimeout(() => finish({ code, ...(signal === null ? {} : { signal }) }), 200).unref());
    if (req.input !== undefined) {
      child.stdin!.on('error', () => {});
      child.stdin!.end(req.input);
    }
  });
}

class Helper {
  readonly #child: ChildProcess;
  readonly #pending = new Map<number, (r: ToolOutcome) => void>();
  #next = 0;
  #alive = true;

  constructor() {
    if (statSync('/proc/thread-self/ns/net').ino !== HOME_NETNS) throw new Error('tool runner: asked to start its helper from inside another network namespace');
    this.#child = spawn(process.execPath, [HELPER], { stdio: ['pipe', 'pipe', 'inherit'] });
    createInterface({ input: this.#child.stdout! }).on('line', (line) => {
      const { id, ...outcome } = JSON.parse(line) as ToolResult;
      this.#pending.get(id)?.(outcome);
      this.#pending.delete(id);
      this.#idle();
    });
    this.#child.stdin!.on('error', () => {});
    this.#child.on('exit', () => {
      this.#alive = false;
      for (const resolve of this.#pending.values()) resolve({ code: null, stdout: '', stderr: '', error: 'the tool runner helper exited' });
      this.#pending.clear();
    });
    this.#idle();
  }

  get alive(): boolean {
    return this.#alive;
  }

  run(req: Omit<ToolRequest, 'id'>): Promise<ToolOutcome> {
    const id = ++this.#next;
    const outcome = new Promise<ToolOutcome>((resolve) => this.#pending.set(id, resolve));
    this.#busy();
    this.#child.stdin!.write(`${JSON.stringify({ id, ...req })}\n`);
    return outcome;
  }

  // An idle helper must not keep a process alive that has nothing else to do (a CLI command).
  #busy(): void {
    this.#child.ref();
    (this.#child.stdout as unknown as { ref(): void }).ref();
  }

  #idle(): void {
    if (this.#pending.size > 0) return;
    this.#child.unref();
    (this.#child.stdout as unknown as { unref(): void }).unref();
  }
}

let helper: Helper | undefined;

/** Runs `cmd args` (through the helper when it can), resolving with how it ended; never rejects. */
export function runTool(cmd: string, args: readonly string[], options: { input?: string; timeoutMs?: number } = {}): Promise<ToolOutcome> {
  const req = { cmd, args: [...args], ...options };
  if (!existsSync(HELPER)) return spawnDirect(req);
  if (helper === undefined || !helper.alive) helper = new Helper();
  return helper.run(req);
}

/** Runs a tool and resolves with its stdout; rejects naming the command and its stderr unless it exits 0. */
export async function toolOutput(cmd: string, args: readonly string[], options: { input?: string; timeoutMs?: number } = {}): Promise<string> {
  const r = await runTool(cmd, args, options);
  if (r.code === 0) return r.stdout;
  const name = cmd.slice(cmd.lastIndexOf('/') + 1);
  throw new Error(`${name} ${args.join(' ')}: ${r.error ?? (r.stderr.trim() || (r.signal !== undefined ? `killed by ${r.signal}` : `exit ${r.code}`))}`);
}
