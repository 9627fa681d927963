/** Something a network holds under a key: an endpoint's names there, or a network's service entry. */
export interface Holder {
  readonly id: string;
  readonly network: string;
}

/** Anything that says whether a network is visible: a Scope. */
export interface NetworkFilter {
  has(network: string): boolean;
}

/** The holders of one key on one network, with their merged value made when first asked for. */
interface Group<H, V> {
  readonly network: string;
  readonly members: Map<string, H>;
  value: V | undefined;
}

/**
 * One table over every network: key → who holds it on which network. A lookup visits the
 * networks that hold the name, not every network of the asker's scope: from loopback that is
 * all of them, and scanning 1000 per-network tables made the first answer for a name cost
 * ~450 µs at 100k endpoints. A key with one holder (most keys) is stored as that holder, with
 * no map or array of its own; groups of several (an alias 5000 endpoints share) merge lazily,
 * on the first lookup after a change, so a bulk load does not merge once per member.
 */
export class HolderTable<H extends Holder, V> {
  readonly #map = new Map<string, H | Group<H, V>[]>();

  /** `one` is a single holder's value (no allocation); `many` merges values, in order. */
  constructor(
    readonly one: (holder: H) => V,
    readonly many: (values: V[]) => V,
  ) {}

  add(key: string, holder: H): void {
    const slot = this.#map.get(key);
    if (slot === undefined || (!Array.isArray(slot) && slot.id === holder.id && slot.network === holder.network)) return void this.#map.set(key, holder);
    const groups = Array.isArray(slot) ? slot : [this.#groupOf(slot)];
    let at = groups.findIndex((g) => g.network >= holder.network);
    if (at < 0) at = groups.push({ network: holder.network, members: new Map(), value: undefined }) - 1;
    else if (groups[at]!.network !== holder.network) groups.splice(at, 0, { network: holder.network, members: new Map(), value: undefined });
    const group = groups[at]!;
    group.members.set(holder.id, holder);
    group.value = undefined;
    this.#map.set(key, groups);
  }

  remove(key: string, holder: Holder): void {
    const slot = this.#map.get(key);
    if (slot === undefined) return;
    if (!Array.isArray(slot)) {
      if (slot.id === holder.id && slot.network === holder.network) this.#map.delete(key);
      return;
    }
    const at = slot.findIndex((g) => g.network === holder.network);
    const group = slot[at];
    if (group === undefined || !group.members.delete(holder.id)) return;
    group.value = undefined;
    if (group.members.size === 0) slot.splice(at, 1);
    if (slot.length === 0) this.#map.delete(key);
    else if (slot.length === 1 && slot[0]!.members.size === 1) this.#map.set(key, slot[0]!.members.values().next().value!);
  }

  /** The value of `key` over the networks `scope` lets through, merged in network order. */
  within(key: string, scope: NetworkFilter): V | undefined {
    const slot = this.#map.get(key);
    if (slot === undefined) return undefined;
    if (!Array.isArray(slot)) return scope.has(slot.network) ? this.one(slot) : undefined;
    let found: V | undefined;
    let several: V[] | undefined;
    for (const g of slot) {
      if (!scope.has(g.network)) continue;
      const v = this.#valueOf(g);
      if (found === undefined) found = v;
      else (several ??= [found]).push(v);
    }
    return several === undefined ? found : this.many(several);
  }

  /** The value of `key` on `network` alone. */
  at(key: string, network: string): V | undefined {
    const slot = this.#map.get(key);
    if (slot === undefined) return undefined;
    if (!Array.isArray(slot)) return slot.network === network ? this.one(slot) : undefined;
    const g = slot.find((x) => x.network === network);
    return g === undefined ? undefined : this.#valueOf(g);
  }

  /** The first network in order (of those `scope` lets through) holding `key`, with its value there. */
  first(key: string, scope: NetworkFilter): { network: string; value: V } | undefined {
    const slot = this.#map.get(key);
    if (slot === undefined) return undefined;
    if (!Array.isArray(slot)) return scope.has(slot.network) ? { network: slot.network, value: this.one(slot) } : undefined;
    const g = slot.find((x) => scope.has(x.network));
    return g === undefined ? undefined : { network: g.network, value: this.#valueOf(g) };
  }

  clear(): void {
    this.#map.clear();
  }

  #groupOf(holder: H): Group<H, V> {
    return { network: holder.network, members: new Map([[holder.id, holder]]), value: undefined };
  }

  #valueOf(g: Group<H, V>): V {
    if (g.value === undefined) {
      const values = [...g.members.values()].map((h) => this.one(h));
      g.value = values.length === 1 ? values[0]! : this.many(values);
    }
    return g.value;
  }
}
