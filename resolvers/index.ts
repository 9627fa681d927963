import type { ResolverPlugin } from '../src/server/resolver.js';
import { acl } from './acl/index.js';
import { cache } from './cache/index.js';
import { forward } from './forward/index.js';
import { local } from './local/index.js';
import { ptr } from './ptr/index.js';
import { services } from './services/index.js';

/**
 * The chain order. Names the registry owns come first so they are never forwarded or served
 * stale; containers before services so a container name wins a clash (as in Docker); PTR
 * before the cache because local reverse names change with the registry; acl after every
 * resolver that answers from the registry (local names answer anyone) and before the cache, so
 * a refused asker cannot read what others made it fetch; the cache right before forward so it
 * sees exactly what forward returns.
 */
export const PLUGIN_ORDER = ['local', 'services', 'ptr', 'acl', 'cache', 'forward'] as const;
export type ResolverName = (typeof PLUGIN_ORDER)[number];

export const PLUGINS: Record<ResolverName, ResolverPlugin> = { local, services, ptr, acl, cache, forward };

/** A resolver list entry: a built-in by name, or a plugin of the caller's own. */
export type ChainEntry = string | ResolverPlugin;

/**
 * The chain for a resolver list. Built-ins run in PLUGIN_ORDER whatever order they are listed in
 * (the order above is what keeps them correct); a caller's plugin runs right before the built-in
 * that follows it in the list, or last when none does: `['local', blocklist, 'forward']` asks
 * `blocklist` about every name that is not a container's before anything is forwarded.
 */
export function chainOf(entries: readonly ChainEntry[]): ResolverPlugin[] {
  const names = new Set<string>();
  for (const e of entries) {
    const name = typeof e === 'string' ? e : e.name;
    if (typeof e === 'string' && !(PLUGIN_ORDER as readonly string[]).includes(e)) {
      throw new Error(`unknown resolver ${JSON.stringify(e)} (known: ${PLUGIN_ORDER.join(', ')}, or a plugin object)`);
    }
    if (typeof e !== 'string' && (typeof name !== 'string' || name === '' || typeof e.setup !== 'function')) {
      throw new Error(`resolver plugin ${JSON.stringify(name)}: a plugin needs a name and a setup(options) function`);
    }
    if (names.has(name)) throw new Error(`resolver ${JSON.stringify(name)} is listed twice`);
    names.add(name);
  }
  const before = new Map<string, ResolverPlugin[]>();
  let waiting: ResolverPlugin[] = [];
  for (const e of entries) {
    if (typeof e !== 'string') waiting.push(e);
    else if (waiting.length > 0) before.set(e, waiting), (waiting = []);
  }
  return [...PLUGIN_ORDER.filter((n) => names.has(n)).flatMap((n) => [...(before.get(n) ?? []), PLUGINS[n]]), ...waiting];
}
