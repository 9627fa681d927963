import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { toolOutput } from '../net/exec/tool-runner.js';
import { ipJson } from '../net/link/ip.js';
import { systemTool } from '../net/tools.js';
import { check, CLONE_NEWNET, setns } from './libc.js';
import { namedNetns, NETNS_DIR } from './paths.js';

/**
 * Runs `fn` with the calling thread inside the network namespace at `path` (a bind mount such
 * as /run/netns/NAME, or /proc/PID/ns/net) and always returns to the original one. `fn` must
 * be synchronous: anything it leaves for later would run back in the host namespace.
 */
export function inNetns<T>(path: string, fn: () => T): T {
  const home = openSync('/proc/thread-self/ns/net', 'r');
  let target: number | undefined;
  try {
    target = openSync(path, 'r');
    check(setns(target, CLONE_NEWNET), `setns ${path}`);
    try {
      return fn();
    } finally {
      check(setns(home, CLONE_NEWNET), 'setns back to the host namespace');
    }
  } finally {
    if (target !== undefined) closeSync(target);
    closeSync(home);
  }
}

/** Mount points, from /proc/self/mountinfo (field 5; octal escapes as the kernel writes them). */
const mountPoints = (): { path: string; shared: boolean }[] =>
  readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const fields = line.split(' ');
      const path = fields[4]!.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
      return { path, shared: fields.slice(6, fields.indexOf('-')).some((f) => f.startsWith('shared:')) };
    });

const isMounted = (path: string): boolean => mountPoints().some((m) => m.path === path);

let netnsDirShared = false;

/**
 * /run/netns made a shared mount of its own, as `ip netns add` makes it: a namespace mounted
 * there later reaches every mount namespace copied from this one (`ip netns exec` makes one per
 * replica), and its unmount does too, so a deleted namespace is not kept alive by such a copy.
 */
async function sharedNetnsDir(): Promise<void> {
  if (netnsDirShared) return;
  mkdirSync(NETNS_DIR, { recursive: true, mode: 0o755 });
  const dir = mountPoints().filter((m) => m.path === NETNS_DIR);
  if (dir.length === 0) await toolOutput(systemTool('mount'), ['--rbind', NETNS_DIR, NETNS_DIR]);
  if (!dir.some((m) => m.shared)) await toolOutput(systemTool('mount'), ['--make-rshared', NETNS_DIR]);
  netnsDirShared = true;
}

/** The path of a namespace made with `ip netns add NAME`. */
export { namedNetns };

/**
 * The namespaces one daemon made, told apart from any other namespace whatever its name: each
 * carries the daemon's owner mark as the alias of its `lo` (as tsnet's links carry it as theirs),
 * and an intent file under the daemon's state directory names it from just before `ip netns add`
 * until it is deleted, which covers a crash between making the namespace and marking it. A
 * runtime's namespace that is adopted (bind-mounted under /run/netns) is never marked, only
 * named by an intent, so that a crash leaves no mount the next daemon does not remove.
 */
export class OwnedNamespaces {
  constructor(
    readonly owner: string,
    /** A directory of the daemon's own (under its state dir). */
    readonly intents: string,
  ) {}

  /**
   * A new namespace mounted at /run/netns/NAME and marked, in one process: `unshare --net=PATH`
   * makes and mounts it, then runs the marking `ip` inside it (`ip netns add` and a second `ip`
   * to mark it cost two). The mount is left behind if the mark fails: the intent names it.
   */
  async create(name: string): Promise<void> {
    mkdirSync(this.intents, { recursive: true, mode: 0o700 });
    writeFileSync(join(this.intents, name), '');
    await sharedNetnsDir();
    writeFileSync(namedNetns(name), '', { flag: 'wx' });
    await toolOutput(systemTool('unshare'), [`--net=${namedNetns(name)}`, '--', systemTool('ip'), 'link', 'set', 'dev', 'lo', 'alias', this.owner]).catch((err: Error) => {
      if (!isMounted(namedNetns(name))) rmSync(namedNetns(name), { force: true });
      throw err;
    });
  }

  /** Mounts the namespace at `path` (a runtime's) as `name`. */
  async adopt(name: string, path: string): Promise<void> {
    mkdirSync(this.intents, { recursive: true, mode: 0o700 });
    writeFileSync(join(this.intents, name), '');
    mkdirSync('/run/netns', { recursive: true });
    writeFileSync(namedNetns(name), '');
    await toolOutput(systemTool('mount'), ['--bind', path, namedNetns(name)]);
  }

  /** Unmounts an adopted namespace: the runtime's namespace lives on. */
  async release(name: string): Promise<void> {
    await toolOutput(systemTool('umount'), [namedNetns(name)]).catch(() => {});
    rmSync(namedNetns(name), { force: true });
    rmSync(join(this.intents, name), { force: true });
  }

  /** Deletes a namespace this daemon made, or unmounts one it adopted (`ip netns del` does either). */
  async remove(name: string): Promise<void> {
    await toolOutput(systemTool('ip'), ['netns', 'del', name]);
    rmSync(join(this.intents, name), { force: true });
  }

  /** Marked by this daemon, or named by its intent and not marked by anyone (a crash came between). */
  async isOurs(name: string): Promise<boolean> {
    const lo = await ipJson<{ ifalias?: string }[]>(['link', 'show', 'dev', 'lo'], name).catch(() => undefined);
    if (lo === undefined) return false;
    const alias = lo[0]?.ifalias;
    return alias === this.owner || (alias === undefined && existsSync(join(this.intents, name)));
  }

  /** Forgets intents whose namespace is gone and that `keep` does not name. */
  forgetGone(keep: ReadonlySet<string>): void {
    const names = existsSync(this.intents) ? readdirSync(this.intents) : [];
    for (const n of names) if (!keep.has(n) && !existsSync(namedNetns(n))) rmSync(join(this.intents, n), { force: true });
  }
}
