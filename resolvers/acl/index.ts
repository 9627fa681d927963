import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { Cidr } from '../../src/net/ipam/cidr.js';
import { unmapped } from '../../src/registry/address.js';
import type { Registry } from '../../src/registry/registry.js';
import { rcodeReply, type Resolver, type ResolverPlugin } from '../../src/server/resolver.js';
import { Rcode } from '../../src/wire/constants.js';

/** `ADDR/BITS`, or a bare address for one host, as a prefix; throws naming the text. */
export function allowPrefix(text: string): Cidr {
  return Cidr.parse(text.includes('/') ? text : `${text}/${isIPv6(text) ? 128 : 32}`);
}

function addPrefix(list: BlockList, text: string): void {
  const prefix = allowPrefix(text);
  list.addSubnet(prefix.at(0n), prefix.bits, prefix.family === 4 ? 'ipv4' : 'ipv6');
}

/** Loopback and every subnet of the registry's networks: who may recurse when no list is given. */
function defaultList(registry: Registry): BlockList {
  const list = new BlockList();
  list.addSubnet('127.0.0.0', 8, 'ipv4');
  list.addAddress('::1', 'ipv6');
  for (const net of registry.networks()) {
    for (const subnet of [net.subnet, net.ipv6Subnet]) {
      if (subnet !== undefined) addPrefix(list, subnet);
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
    // BlockList.check builds a SocketAddress per call; the verdict per source is kept instead
    // (a few thousand sources at most before it starts afresh).
    let verdicts = new Map<string, boolean>();
    if (allow !== undefined) {
      list = new BlockList();
      for (const cidr of allow) addPrefix(list, cidr);
    } else {
      // Rebuilt on the first query after a change, not on every change of a busy registry.
      registry.on('change', () => {
        list = undefined;
        verdicts = new Map();
      });
    }
    const allowed = (source: string): boolean => {
      let verdict = verdicts.get(source);
      if (verdict !== undefined) return verdict;
      const address = unmapped(source);
      list ??= defaultList(registry);
      verdict = list.check(address, isIPv4(address) ? 'ipv4' : 'ipv6');
      if (verdicts.size >= 4096) verdicts = new Map();
      verdicts.set(source, verdict);
      return verdict;
    };
    return {
      name: 'acl',
      resolve(q, ctx, next) {
        if (allowed(ctx.source.address)) return next();
        return rcodeReply(q, Rcode.REFUSED, 'acl');
      },
    };
  },
};
