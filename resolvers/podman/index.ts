import { rcodeReply, type Resolver, type ResolverPlugin } from '../../src/server/resolver.js';
import { Rcode } from '../../src/wire/constants.js';
import { answerEntry, ownsClass } from '../answer.js';

export interface PodmanOptions {
  /** Podman's search domain (`dns.podman`, aardvark's `-f`): `web.dns.podman` is `web`, and nothing else under it exists. */
  domain: string;
  /** Networks that forward nothing (`%int` files): an asker on only these gets NXDOMAIN instead. */
  internal: () => ReadonlySet<string>;
  /** `AARDVARK_NO_PROXY`: forward nothing at all. */
  noProxy: boolean;
}

/**
 * Aardvark-dns's naming rules on top of the registry's, for netavark's containers: names under
 * the search domain answer as the bare name, and what must not leave the host (a name under the
 * domain, a single label, any name from an internal network's container) ends in NXDOMAIN here
 * instead of going to `forward`. Runs after `ptr`, before `forward`.
 */
export const podman = (o: PodmanOptions): ResolverPlugin => ({
  name: 'podman',
  setup({ registry, ttl }): Resolver {
    const suffix = `.${o.domain}`;
    const nxdomain = (q: Parameters<Resolver['resolve']>[0]) => rcodeReply(q, Rcode.NXDOMAIN, 'podman');
    return {
      name: 'podman',
      // What it answers follows from the registry, the question and fixed options: replaying past it is safe.
      bypassable: true,
      resolve(q, ctx, next) {
        if (!ownsClass(q)) return next();
        if (q.name === o.domain || q.name.endsWith(suffix)) {
          const entry = q.name === o.domain ? undefined : registry.lookup(ctx.scope, 'endpoints', q.name.slice(0, -suffix.length));
          return entry === undefined ? nxdomain(q) : answerEntry(q, entry, ttl, 'podman');
        }
        const internal = o.internal();
        const onlyInternal = ctx.scope.networks.length > 0 && ctx.scope.networks.every((n) => internal.has(n));
        if (o.noProxy || onlyInternal || (q.name !== '' && !q.name.includes('.'))) return nxdomain(q);
        return next();
      },
    };
  },
});
