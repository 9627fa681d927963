import { existsSync } from 'node:fs';
import type { Logger } from 'pino';
import type { ClusterView, ViewChange } from '../reconcile/cluster-view.js';
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
  /** The store as this node sees it: each change to one of this node's sandboxes or its endpoints queues a pass for it. */
  view: ClusterView;
  /** Search domains of the host, for sandboxes that set none (as Docker does). */
  hostSearch: readonly string[];
  logger: Logger;
}

/** What a pass could not bring up, by sandbox: the change it followed is stored, its sandbox is not as it says. */
export class UpkeepError extends AggregateError {}

/** Sandboxes brought up at once: opening listeners and writing files is the daemon's own work, this lets their awaits overlap. */
const PARALLEL = 8;

/**
 * What a sandbox has besides its links: `resolv.conf`, `hosts` and `hostname` as the state
 * renders them (a user's edit kept), and, on networks, its resolver at 127.0.0.11. A reconciler
 * of the view: a stored change to a sandbox (its record or an endpoint) queues a pass over it and
 * over each sandbox whose hosts file names it by `--link`, which compares what the state renders
 * with what it last made and changes only the difference; a relist queues every sandbox. A
 * sandbox whose namespace is not there yet is left for the pass that makes it. Passes run one at
 * a time, in the order of the changes.
 */
export class SandboxUpkeep {
  readonly #resolvers: SandboxResolvers;
  /** Sandbox id → its files as last written: a pass that renders the same ones writes nothing. */
  readonly #written = new Map<string, string>();
  /** Sandbox id → its name, as last seen: a removed sandbox's linkers are found by it. */
  readonly #names = new Map<string, string>();
  /** Sandbox id → why its last pass failed; a pass that succeeds clears it. */
  readonly #failed = new Map<string, Error>();
  #queue: Promise<void> = Promise.resolve();

  constructor(readonly options: SandboxUpkeepOptions) {
    this.#resolvers = new SandboxResolvers(options.dns, options.state);
    options.view.onChange((change) => void this.#queued(change).catch(() => {}));
  }

  /**
   * A pass over `touched` (and their linkers), or over every sandbox, queued behind the ones the
   * view's changes made; rejects with what failed. For the start, before any change is stored.
   */
  converge(touched?: readonly SandboxRecord[]): Promise<void> {
    for (const sb of touched ?? []) this.#names.set(sb.id, sb.name);
    return this.#enqueue(touched === undefined ? undefined : new Set(touched.map((sb) => sb.id)));
  }

  /**
   * Resolves once every queued pass has run, so what the store holds now is in the sandboxes;
   * rejects with what failed for `ids`, whose change the caller is about to answer.
   */
  async settled(ids: readonly string[]): Promise<void> {
    await this.#queue;
    const failed = ids.flatMap((id) => this.#failed.get(id) ?? []);
    if (failed.length > 0) throw new UpkeepError(failed, failed.map((e) => e.message).join('; '));
  }

  #queued(change: ViewChange): Promise<void> {
    if (change.relisted) return this.#enqueue(undefined);
    const ids = new Set([...change.ownSandboxes, ...change.sandboxes].filter((id) => this.#names.has(id) || this.options.state().sandboxes.some((sb) => sb.id === id)));
    return ids.size === 0 ? Promise.resolve() : this.#enqueue(ids);
  }

  #enqueue(ids: ReadonlySet<string> | undefined): Promise<void> {
    const pass = this.#queue.then(() => this.#pass(ids));
    this.#queue = pass.catch((err: Error) => this.options.logger.error({ err: err.message }, 'sandbox files or resolvers could not be brought up to date; the next change tries again'));
    return pass;
  }

  async #pass(ids: ReadonlySet<string> | undefined): Promise<void> {
    const state = this.options.state();
    const names = new Set([...(ids ?? [])].flatMap((id) => this.#names.get(id) ?? []));
    const todo = ids === undefined ? state.sandboxes : state.sandboxes.filter((sb) => ids.has(sb.id) || sb.links.some((l) => names.has(l.name)));
    const gone = [...(ids ?? [])].filter((id) => !state.sandboxes.some((sb) => sb.id === id));
    for (const id of gone) this.#forget(id);
    const failed: Error[] = [];
    await forEachBounded(todo, PARALLEL, async (sb) => {
      this.#names.set(sb.id, sb.name);
      try {
        await this.#one(state, sb);
        this.#failed.delete(sb.id);
      } catch (err) {
        const e = new Error(`sandbox ${sb.name}: ${(err as Error).message}`);
        this.#failed.set(sb.id, e);
        failed.push(e);
      }
    });
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

  #forget(id: string): void {
    this.#names.delete(id);
    this.#failed.delete(id);
    this.#written.delete(id);
  }

  /**
   * Closes the sandbox's resolver: called by its teardown first of all, while its namespace is
   * still there (nothing answers from a namespace being deleted), not left for the event of its
   * removal, which comes after.
   */
  close(sb: SandboxRecord): Promise<void> {
    return this.#resolvers.close(sb);
  }

  /** Removes its files, once its namespace is gone. */
  removeFiles(sb: SandboxRecord): void {
    this.#written.delete(sb.id);
    removeSandboxFiles(filesDir(sb.netns!));
  }
}
