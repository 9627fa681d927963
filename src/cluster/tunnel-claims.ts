import { Cidr } from '../net/ipam/cidr.js';
import { create, type Store } from '../store/store.js';
import { idOf, tunnelKey, TUNNELS } from './keys.js';
import type { TunnelClaim } from './objects.js';

/**
 * Tunnel addresses: one per node from a pool the whole cluster shares, claimed by a CAS create
 * of `ipam/tunnels/<ip>`. Not leased: a node keeps its address across restarts and lost leases
 * (its encrypted overlays' VXLAN devices carry it as their `local`), and `tsnet node rm` frees it.
 */

/** The pool (RFC 6598 shared address space, as Tailscale uses it): 65 534 nodes. */
export const TUNNEL_POOL = '100.64.0.0/16';

const fail = (message: string): Error => new Error(`cluster/tunnels: ${message}`);

/** The address `node` holds, claiming the lowest free one when it holds none; retried when another node wins the race. */
export async function claimTunnelAddress(store: Store, node: string, pool: string = TUNNEL_POOL): Promise<string> {
  const cidr = Cidr.parse(pool);
  if (cidr.family !== 4) throw fail(`pool ${pool}: IPv4 only`);
  for (let attempt = 0; attempt < 20; attempt++) {
    const { kvs } = await store.list<TunnelClaim>(TUNNELS);
    const mine = kvs.find((kv) => kv.value.node === node && cidr.contains(idOf(kv.key)));
    if (mine !== undefined) return idOf(mine.key);
    const taken = new Set(kvs.map((kv) => idOf(kv.key)));
    // Neither the network address nor the broadcast one.
    let offset = 1n;
    while (offset < cidr.size - 1n && taken.has(cidr.at(offset))) offset++;
    if (offset >= cidr.size - 1n) throw fail(`pool ${pool} is exhausted`);
    const ip = cidr.at(offset);
    if (await create(store, tunnelKey(ip), { node } satisfies TunnelClaim)) return ip;
  }
  throw fail(`no address of ${pool} could be claimed for node ${node} in 20 attempts`);
}

/** The prefix length of the pool: the tunnel address is put on the WireGuard device with it. */
export const poolBits = (pool: string = TUNNEL_POOL): number => Cidr.parse(pool).bits;
