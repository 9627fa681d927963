import type { KeyValue, Store, StoreEvent, Watch } from '../store/store.js';
import { idOf, NODES } from './keys.js';
import type { NodeObject } from './objects.js';

/**
 * The cluster's nodes as one watcher sees them: `ready` while a node's key exists, `down` once
 * it is gone (its lease expired or was revoked). Down nodes stay known by name, with when they
 * went down, so `node ls` can show them; a node seen only after it was gone is not known.
 */

export type NodeState = 'ready' | 'down';

export interface NodeStatus {
  name: string;
  state: NodeState;
  /** Its record as last seen. */
  node: NodeObject;
  /** When this watcher saw it enter its state. */
  since: Date;
}

export interface NodeListOptions {
  /** Milliseconds between attempts to list again after a reset, while the store does not answer. */
  retryMs?: number;
}

export class NodeList {
  readonly #store: Store;
  readonly #retryMs: number;
  readonly #nodes = new Map<string, NodeStatus>();
  readonly #handlers: ((status: NodeStatus) => void)[] = [];
  #watch: Watch | undefined;
  #closed = false;

  private constructor(store: Store, retryMs: number) {
    this.#store = store;
    this.#retryMs = retryMs;
  }

  /** Lists the nodes, then follows every change from the revision listed. */
  static async open(store: Store, { retryMs = 1000 }: NodeListOptions = {}): Promise<NodeList> {
    const list = new NodeList(store, retryMs);
    await list.#sync();
    return list;
  }

  get(name: string): NodeStatus | undefined {
    return this.#nodes.get(name);
  }

  /** Every node seen, sorted by name. */
  all(): NodeStatus[] {
    return [...this.#nodes.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** The ready nodes' names, sorted: what placement takes. */
  ready(): string[] {
    return this.all().flatMap((s) => (s.state === 'ready' ? [s.name] : []));
  }

  /** Stops showing a node that is down (removed for good); a ready one stays. */
  forget(name: string): void {
    if (this.#nodes.get(name)?.state === 'down') this.#nodes.delete(name);
  }

  /** Called for every change of a node's state or record. */
  onChange(handler: (status: NodeStatus) => void): void {
    this.#handlers.push(handler);
  }

  close(): void {
    this.#closed = true;
    this.#watch?.close();
  }

  /** Lists and compares with what is held (a node missing from the list went down), then watches on. */
  async #sync(): Promise<void> {
    const { kvs, revision } = await this.#store.list<NodeObject>(NODES);
    if (this.#closed) return;
    const listed = new Set(kvs.map((kv) => idOf(kv.key)));
    for (const kv of kvs) this.#up(kv);
    for (const name of [...this.#nodes.keys()].filter((n) => !listed.has(n))) this.#down(name);
    this.#watch = this.#store.watch(NODES, revision, {
      events: (events) => events.forEach((e) => this.#apply(e)),
      reset: () => void this.#resync(),
    });
  }

  async #resync(): Promise<void> {
    while (!this.#closed) {
      try {
        return await this.#sync();
      } catch {
        await new Promise((r) => setTimeout(r, this.#retryMs));
      }
    }
  }

  #apply(e: StoreEvent): void {
    if (e.type === 'put') this.#up(e.kv as KeyValue<NodeObject>);
    else this.#down(idOf(e.key), e.prev?.value as NodeObject | undefined);
  }

  #up(kv: KeyValue<NodeObject>): void {
    const name = idOf(kv.key);
    const was = this.#nodes.get(name);
    if (was?.state === 'ready' && JSON.stringify(was.node) === JSON.stringify(kv.value)) return;
    this.#set({ name, state: 'ready', node: kv.value, since: was?.state === 'ready' ? was.since : new Date() });
  }

  #down(name: string, last?: NodeObject): void {
    const was = this.#nodes.get(name);
    const node = last ?? was?.node;
    if (was?.state === 'down' || node === undefined) return;
    this.#set({ name, state: 'down', node, since: new Date() });
  }

  #set(status: NodeStatus): void {
    this.#nodes.set(status.name, status);
    for (const h of this.#handlers) h(status);
  }
}
