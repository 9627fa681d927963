import { spawn, type ChildProcess } from 'node:child_process';
import type { Logger } from 'pino';
import { toolOutput } from '../net/exec/tool-runner.js';
import { systemTool } from '../net/tools.js';

/** Restart delays: the first is long enough for a health check to see the replica gone. */
const FIRST_BACKOFF_MS = 2000;
const MAX_BACKOFF_MS = 30_000;
/** A replica that ran this long before exiting starts again from the first delay. */
const STABLE_MS = 10_000;
/** How often the processes of an adopted replica (not our children: no exit event) are looked at. */
const ADOPTED_POLL_MS = 500;

/** The pids of every process in a named namespace. */
export const netnsPids = async (netns: string): Promise<number[]> =>
  (await toolOutput(systemTool('ip'), ['netns', 'pids', netns])).split('\n').filter(Boolean).map(Number);

/** Kills every process in a named namespace (a replica's command and whatever it forked). */
export const killAllIn = async (netns: string): Promise<void> => (await netnsPids(netns).catch(() => [])).forEach(kill);

/** Whether process `pid` exists (signal 0 checks without sending anything). */
export const processAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

const kill = (pid: number): void => {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
};

/**
 * One replica's command, kept running inside its sandbox: restarted with a growing delay when
 * it exits, and, after a daemon restart, adopted when it is still running (a replica outlives
 * the daemon: its own process group, not killed with it) instead of being started twice.
 */
export class ReplicaProcess {
  #child: ChildProcess | undefined;
  #adopted: number[] = [];
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #backoff = FIRST_BACKOFF_MS;

  constructor(
    readonly netns: string,
    readonly command: string,
    readonly logger: Logger,
  ) {}

  /** Adopts what runs in the namespace already (only the replica runs there), or starts the command. */
  async start(): Promise<void> {
    const pids = await netnsPids(this.netns).catch(() => []);
    if (pids.length === 0) return this.#spawn();
    this.#adopted = pids;
    this.logger.info({ netns: this.netns, pids }, 'replica adopted from a previous daemon');
    this.#timer = setInterval(() => {
      if (this.#adopted.some(processAlive)) return;
      clearInterval(this.#timer);
      this.#adopted = [];
      this.#exited('adopted processes are gone');
    }, ADOPTED_POLL_MS);
    this.#timer.unref();
  }

  /** Stops supervising and kills everything in the replica's namespace (its command and what it forked). */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    clearInterval(this.#timer);
    if (this.#child?.pid !== undefined) {
      try {
        process.kill(-this.#child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    this.#adopted.forEach(kill);
    await killAllIn(this.netns);
  }

  #spawn(): void {
    if (this.#stopped) return;
    const started = Date.now();
    const child = spawn(systemTool('ip'), ['netns', 'exec', this.netns, 'sh', '-c', this.command], { stdio: 'ignore', detached: true });
    this.#child = child;
    child.on('error', (err) => this.logger.error({ netns: this.netns, err: err.message }, 'replica could not be started'));
    child.on('exit', (code, signal) => {
      this.#child = undefined;
      if (Date.now() - started >= STABLE_MS) this.#backoff = FIRST_BACKOFF_MS;
      this.#exited(`exited with ${code ?? signal}`);
    });
    child.unref();
  }

  #exited(why: string): void {
    if (this.#stopped) return;
    this.logger.warn({ netns: this.netns, why, restartInMs: this.#backoff }, 'replica command ended; restarting');
    this.#timer = setTimeout(() => this.#spawn(), this.#backoff);
    this.#timer.unref();
    this.#backoff = Math.min(this.#backoff * 2, MAX_BACKOFF_MS);
  }
}
