import { BlockList, isIPv4, isIPv6 } from 'node:net';
import type { Registry } from '../../src/registry/registry.js';
import type { Resolver, ResolverPlugin } from '../../src/server/resolver.js';
import { Rcode } from '../../src/wire/constants.js';
import { emptyReply } from '../../src/wire/reply.js';

/** Parses `ADDR/BITS` (or a bare address, one host) into [address, prefix, family]; throws naming the text. */
export function parseCidr(text: string): [string, number, 'ipv4' | 'ipv6'] {
  const [address = '', bits, ...rest] = text.split('/');
  const family = isIPv4(address) ? 'ipv4' : isIPv6(address) ? 'ipv6' : undefined;
  const max = family === 'ipv4' ? 32 : 128;
  const prefix = bits === undefined ? max : /^\d{1,3}$/.test(bits) ? Number(bits) : NaN;
  if (family === undefined || rest.length > 0 || !(prefix >= 0 && prefix <= max)) throw new Error(`allow ${JSON.stringify(text)}: not an IP address or CIDR`);
  return [address, prefix, family];
}

/** Loopback and every subnet of the registry's networks: who may recurse when no list is given. */
function defaultList(registry: Registry): BlockList {
  const list = new BlockList();
  list.addSubnet('127.0.0.0', 8, 'ipv4');
  list.addAddress('::1', 'ipv6');
  for (const net of registry.networks()) {
    for (const subnet of [net.subnet, net.ipv6Subnet]) {
      if (subnet !== undefined) list.addSubnet(...parseCidr(subnet));
    }
  }
  return list;
}

/**
 * Recursion only for askers allowed to use it: everything that reaches this resolver (names
 * tsnet does not own) is REFUSED to anyone else, so a `tsnet-dns` on 0.0.0.0 is no open
 * resolver. Local names were answered before it and answer for anyone.
 */
export const acl: ResolverPlugin = {
  name: 'acl',
  setup({ registry, allow }): Resolver {
    let list: BlockList | undefined;
    if (allow !== undefined) {
      list = new BlockList();
      for (const cidr of allow) list.addSubnet(...parseCidr(cidr));
    } else {
      // Rebuilt on the first query after a change, not on every change of a busy registry.
      registry.on('change', () => (list = undefined));
    }
    return {
      name: 'acl',
      resolve(q, ctx, next) {
        // A dual-stack socket reports IPv4 askers as ::ffff:a.b.c.d.
        const address = ctx.source.address.startsWith('::ffff:') && isIPv4(ctx.source.address.slice(7)) ? ctx.source.address.slice(7) : ctx.source.address;
        const family = isIPv4(address) ? 'ipv4' : 'ipv6';
        list ??= defaultList(registry);
        if (list.check(address, family)) return next();
        return { bytes: emptyReply(q.raw, Rcode.REFUSED, q.questionEnd, q.edns), rcode: Rcode.REFUSED, resolver: 'acl' };
      },
    };
  },
};
