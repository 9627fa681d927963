import { reverseNameKey } from '../../src/registry/address.js';
import type { Resolver, ResolverPlugin } from '../../src/server/resolver.js';
import { QType } from '../../src/wire/constants.js';
import { authoritative, ownsClass } from '../answer.js';

/** Reverse names of endpoint, task and VIP addresses on the asker's networks: `name.network.`. */
export const ptr: ResolverPlugin = {
  name: 'ptr',
  setup({ registry, ttl }): Resolver {
    return {
      name: 'ptr',
      bypassable: true,
      resolve(q, ctx, next) {
        const key = ownsClass(q) ? reverseNameKey(q.name) : undefined;
        const names = key === undefined ? undefined : registry.reverse(ctx.scope, key);
        if (names === undefined) return next();
        if (q.type !== QType.PTR && q.type !== QType.ANY) return authoritative(q, 'ptr', []);
        return authoritative(q, 'ptr', names.map((data) => ({ name: q.name, type: 'PTR' as const, ttl, data })));
      },
    };
  },
};
