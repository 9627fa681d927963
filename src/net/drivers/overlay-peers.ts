import { ipBatch, ipJson } from '../link/ip.js';

/** A sandbox on another node, as this node's `vxlan0` must know it: its address, MAC and node (the VTEP). */
export interface Peer {
  ip: string;
  mac: string;
  /** The underlay address of the peer's node. */
  vtep: string;
}

interface NeighEntry {
  dst: string;
  lladdr?: string;
  state?: string[];
}
interface FdbEntry {
  mac: string;
  dst?: string;
  flags?: string[];
  state?: string;
}

/** The peers programmed in an overlay namespace's `vxlan0`: permanent neighbours joined with their FDB entries. */
export async function kernelPeers(ns: string): Promise<Map<string, Peer>> {
  const [neigh, fdb] = await Promise.all([ipJson<NeighEntry[]>(['neigh', 'show', 'dev', 'vxlan0', 'nud', 'permanent'], ns), ipJson<FdbEntry[]>(['fdb', 'show', 'dev', 'vxlan0'], ns, 'bridge')]);
  const vtepOf = new Map(fdb.filter((f) => f.dst !== undefined && f.state === 'permanent').map((f) => [f.mac, f.dst!]));
  const peers = new Map<string, Peer>();
  for (const n of neigh) if (n.lladdr !== undefined) peers.set(n.dst, { ip: n.dst, mac: n.lladdr, vtep: vtepOf.get(n.lladdr) ?? '' });
  return peers;
}

/**
 * Programs `put` (a permanent neighbour entry, answered by proxy ARP, and a permanent FDB entry
 * towards the peer's node: both are needed, nothing is learned or flooded) and removes `drop`.
 * `replace`, so a peer that moved to another node or MAC is rewritten in place.
 */
export async function programPeers(ns: string, put: readonly Peer[], drop: readonly Peer[]): Promise<void> {
  if (drop.length > 0) {
    // Some may be gone already (the kernel drops FDB entries with their device): errors here are fine.
    await ipBatch(drop.map((p) => ['neigh', 'del', p.ip, 'dev', 'vxlan0']), ns, { force: true });
    await ipBatch(drop.map((p) => ['fdb', 'del', p.mac, 'dev', 'vxlan0', 'self']), ns, { tool: 'bridge', force: true });
  }
  if (put.length > 0) {
    await ipBatch(put.map((p) => ['neigh', 'replace', p.ip, 'lladdr', p.mac, 'dev', 'vxlan0', 'nud', 'permanent']), ns);
    await ipBatch(put.map((p) => ['fdb', 'replace', p.mac, 'dev', 'vxlan0', 'dst', p.vtep, 'self', 'permanent']), ns, { tool: 'bridge' });
  }
}
