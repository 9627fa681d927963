import { existsSync } from 'node:fs';
import { forEachBounded } from './bounded.js';
import { filesDir, netnsPath } from './dataplane.js';
import { ownNamespace } from './plan.js';
import { sandboxFiles } from './projection.js';
import { SandboxResolvers } from './sandbox-resolvers.js';
import type { DaemonState, SandboxRecord } from './state.js';
import { removeSandboxFiles, writeSandboxFiles } from '../netns/sandbox-files.js';
import type { DnsServer } from '../server/server.js';

export interface SandboxUpkeepOptions {
  dns: DnsServer;
  /** This node's state as it is now (its sandboxes, their networks). */
  state: () => DaemonState;
  /** Search domains of the host, for sandboxes that set none (as Docker does). */
  hostSearch: readonly string[];
}

/** Sandboxes brought up at once: opening listeners and writing files is the daemon's own work, this lets their awaits overlap. */
const PARALLEL = 8;

/**
 * What a sandbox has besides its links: `resolv.conf`, `hosts` and `hostname` as the state
 * renders them (a user's edit kept), and, on networks, its resolver at 127.0.0.11. `converge`
 * compares each sandbox it is given, and each whose hosts file names one of them by `--link`,
 * with what it last made, and changes only the difference; without arguments, every sandbox
 * (a restore). A sandbox whose namespace is not there yet is left for the pass that makes it.
 */
export class SandboxUpkeep {
  readonly #resolvers: SandboxResolvers;
  /** Sandbox id → its files as last written: a pass that renders the same ones writes nothing. */
  readonly #written = new Map<string, string>();

  constructor(readonly options: SandboxUpkeepOptions) {
    this.#resolvers = new SandboxResolvers(options.dns, options.state);
  }

  async converge(touched?: readonly SandboxRecord[]): Promise<void> {
    const state = this.options.state();
    const names = new Set(touched?.map((sb) => sb.name));
    const ids = new Set(touched?.map((sb) => sb.id));
    const todo = touched === undefined ? state.sandboxes : state.sandboxes.filter((sb) => ids.has(sb.id) || sb.links.some((l) => names.has(l.name)));
    const failed: Error[] = [];
    await forEachBounded(todo, PARALLEL, (sb) => this.#one(state, sb).catch((err: Error) => void failed.push(new Error(`sandbox ${sb.name}: ${err.message}`))));
    if (failed.length > 0) throw new AggregateError(failed, failed.map((e) => e.message).join('; '));
  }

  async #one(state: DaemonState, sb: SandboxRecord): Promise<void> {
    if (!ownNamespace(sb.mode) || !existsSync(netnsPath(sb.netns!))) return;
    const files = sandboxFiles(state, sb, this.options.hostSearch);
    const text = JSON.stringify(files);
    if (this.#written.get(sb.id) !== text) {
      sb.fileHashes = writeSandboxFiles(filesDir(sb.netns!), files, sb.fileHashes);
      this.#written.set(sb.id, text);
    }
    // A sandbox without networks (mode none) has no one to ask: Docker gives it no embedded resolver either.
    if (sb.mode === 'networks') await this.#resolvers.open(sb);
  }

  /** Closes the sandbox's resolver: first of all when it goes, while its namespace is still there. */
  close(sb: SandboxRecord): Promise<void> {
    return this.#resolvers.close(sb);
  }

  /** Removes its files, once its namespace is gone. */
  removeFiles(sb: SandboxRecord): void {
    this.#written.delete(sb.id);
    removeSandboxFiles(filesDir(sb.netns!));
  }
}
