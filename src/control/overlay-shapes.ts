import type { NodeList } from '../cluster/node-list.js';
import type { EndpointObject } from '../cluster/objects.js';
import type { NetworkRecord } from '../daemon/state.js';
import type { Json } from './fields.js';
import type { Tunnels } from '../reconcile/tunnels.js';

/** The nodes that have sandboxes on an overlay network, by name, with the sandboxes there. */
function sandboxesByNode(endpoints: readonly EndpointObject[]): Map<string, string[]> {
  const by = new Map<string, string[]>();
  for (const e of endpoints) by.set(e.node, [...(by.get(e.node) ?? []), e.sandbox.name].sort());
  return by;
}

/**
 * `Peers` of an overlay in `network inspect`, as Docker lists them (`Name`, `IP`: every node the
 * network is built on), with the sandboxes each has on it and whether the node is ready.
 */
export function overlayPeers(endpoints: readonly EndpointObject[], nodes: NodeList): Json[] {
  return [...sandboxesByNode(endpoints)].sort(([a], [b]) => (a < b ? -1 : 1)).map(([name, sandboxes]) => {
    const n = nodes.get(name);
    return { Name: name, IP: n?.node.address ?? '', State: n?.state ?? 'unknown', Sandboxes: sandboxes };
  });
}

/** For each node: the other nodes it carries VXLAN traffic with (both have a sandbox on one overlay). */
export function overlayNeighbours(overlays: readonly NetworkRecord[], endpointsOn: (id: string) => readonly EndpointObject[]): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const net of overlays) {
    const on = [...new Set(endpointsOn(net.id).map((e) => e.node))];
    for (const a of on) for (const b of on) if (a !== b) out.set(a, (out.get(a) ?? new Set()).add(b));
  }
  return out;
}

/**
 * `Tunnel` of an encrypted overlay in `network inspect`: this node's WireGuard interface (its
 * kind, or `down` while no sandbox here is on an encrypted overlay), its public key and address,
 * and each peer's state as `wg` reports it. The private key is never read into the answer.
 */
export async function tunnelView(tunnels: Tunnels): Promise<Json> {
  const s = await tunnels.status();
  return {
    Interface: s.ifname,
    Kind: s.kind,
    Address: s.address ?? '',
    PublicKey: s.publicKey ?? '',
    ListenPort: s.listenPort,
    KeyRotatedAt: s.keyRotatedAt ?? '',
    Guard: { Table: s.guard.table, DroppedIn: s.guard.in, DroppedOut: s.guard.out },
    Peers: s.peers.map((p) => ({
      Node: p.node,
      PublicKey: p.publicKey,
      Endpoint: p.endpoint,
      AllowedIPs: p.allowedIp,
      LatestHandshake: p.latestHandshake === 0 ? '' : new Date(p.latestHandshake * 1000).toISOString(),
      RxBytes: p.rxBytes,
      TxBytes: p.txBytes,
    })),
  };
}
