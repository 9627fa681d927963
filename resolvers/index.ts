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

/** Checks a user's resolver list and returns it in chain order. */
export function chainOf(names: readonly string[]): ResolverName[] {
  for (const n of names) {
    if (!(PLUGIN_ORDER as readonly string[]).includes(n)) {
      throw new Error(`unknown resolver ${JSON.stringify(n)} (known: ${PLUGIN_ORDER.join(', ')})`);
    }
  }
  return PLUGIN_ORDER.filter((n) => names.includes(n));
}
