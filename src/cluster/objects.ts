import type { PortMapping } from '../net/ports/spec.js';
import type { ServicePort } from '../registry/types.js';

/**
 * The objects of the cluster store (src/cluster/keys.ts says where each lives): what every node
 * must see. What only one host knows (namespace paths, host interface names, file hashes, the
 * sockets holding host ports) is not here: it stays in that host's local file.
 */

export interface NodeObject {
  name: string;
  /** The address other nodes reach this one at (`--advertise-addr`). */
  address: string;
  /** ISO time the daemon started. */
  startedAt: string;
  /** Its WireGuard tunnel, while it has one up (while it has a sandbox on an encrypted overlay). */
  wireguard?: WireguardObject;
}

/** What other nodes need to reach a node through WireGuard; its private key never leaves it. */
export interface WireguardObject {
  /** Base64, as `wg` prints it. */
  publicKey: string;
  /** `ADDR:PORT` its WireGuard listens at (the advertise address; IPv6 as `[ADDR]:PORT`). */
  endpoint: string;
  /** Its tunnel address (claimed in `ipam/tunnels/`): the VTEP of its encrypted overlays. */
  address: string;
}

/** Who holds a tunnel address: one node, for good (not leased: its address must outlive a lost lease). */
export interface TunnelClaim {
  node: string;
}

export interface IpamConfig {
  subnet: string;
  gateway: string;
  ipRange?: string;
  subnet6?: string;
  gateway6?: string;
}

export interface NetworkObject {
  /** 64 hex, Docker-style. */
  id: string;
  name: string;
  driver: 'bridge' | 'macvlan' | 'overlay';
  /** `local`: one node's (bridge, macvlan), which `node` names; `swarm`: the cluster's (overlay). */
  scope: 'local' | 'swarm';
  node?: string;
  /** ISO time. */
  created: string;
  internal: boolean;
  /** Names resolve on it (false for the default `bridge`, like docker0). */
  dns: boolean;
  ipam: IpamConfig | null;
  /**
   * The bridge device (tsnet0, tsbr-<10 hex>), or an overlay's VXLAN device as made in the host
   * namespace (vx-<VNI, 6 hex>-<5 hex>): configuration, the same wherever it is made.
   */
  device?: string;
  /** overlay: its VXLAN network identifier, claimed in the store (4096 up, as Docker's). */
  vni?: number;
  /** overlay: sandboxes may join it by hand; without it only a service's replicas do. */
  attachable?: boolean;
  mtu: number;
  labels: Record<string, string>;
  options: Record<string, string>;
}

/** An overlay whose VXLAN crosses between nodes only inside WireGuard (`-o encrypted=true`). */
export const isEncrypted = (n: NetworkObject): boolean => n.driver === 'overlay' && n.options.encrypted === 'true';

/** Whether a network is `node`'s to use: the cluster's, or a local one of that node. */
export const visibleOn = (n: NetworkObject, node: string): boolean => n.scope === 'swarm' || n.node === node;

/**
 * Whether a service is `node`'s to see: one on a swarm network is everyone's, one on a local
 * network only its node's (other nodes' same-named networks are other networks). `networks` is
 * every network in the cluster, by id.
 */
export function serviceVisibleOn(svc: ServiceObject, networks: ReadonlyMap<string, NetworkObject>, node: string): boolean {
  if (svc.networkId === undefined) return true;
  const n = networks.get(svc.networkId);
  return n !== undefined && visibleOn(n, node);
}

/** Who holds a subnet taken from the default pools (or given): no two networks get one. */
export interface SubnetClaim {
  network: string;
}

/** Who holds a VXLAN network identifier: one overlay network in the cluster. */
export interface VniClaim {
  network: string;
}

/** Who holds an address on a network: an endpoint, a service's VIP, or the gateway. */
export interface AddressClaim {
  /** `endpoint:<id>`, `vip:<service id>`, `gateway`. */
  holder: string;
  node?: string;
}

export interface AttachmentObject {
  ipv4?: string;
  ipv6?: string;
  aliases: string[];
  /** Interface inside the sandbox. */
  ifname: string;
  /** Endpoint id (64 hex). */
  endpointId: string;
}

export interface LinkObject {
  /** The linked sandbox's name. */
  name: string;
  alias: string;
}

export interface SandboxObject {
  id: string;
  name: string;
  node: string;
  created: string;
  hostname: string;
  /** `networks`: its own namespace wired to networks; `host`/`none`; or another sandbox's namespace. */
  mode: 'networks' | 'host' | 'none' | `container:${string}`;
  aliases: string[];
  dns: string[];
  dnsSearch: string[];
  dnsOptions: string[];
  links: LinkObject[];
  /** Network name → its attachment. */
  attachments: Record<string, AttachmentObject>;
  /** Published ports, host ports allocated. */
  ports: PortMapping[];
  /** The service whose replica this sandbox is. */
  replicaOf?: string;
}

/** One sandbox on one network, as every node's resolvers and load balancers see it. Leased by its node. */
export interface EndpointObject {
  id: string;
  /** Network id. */
  network: string;
  node: string;
  sandbox: { id: string; name: string; hostname: string };
  ipv4?: string;
  ipv6?: string;
  /** The sandbox's aliases and its network-scoped ones. */
  aliases: string[];
}

export interface ReplicaSpec {
  count: number;
  /** Run with `sh -c` inside each replica's sandbox. */
  command: string;
  /** Exit 0 means healthy; run inside the replica's sandbox. */
  healthCmd?: string;
  /** Or: healthy while the task accepts TCP connections on this port. */
  healthTcp?: number;
  /** Milliseconds between health checks (default 1000). */
  healthInterval?: number;
}

export interface ServiceObject {
  id: string;
  name: string;
  /** Network name. */
  network: string;
  /**
   * Network id: which network of that name, since every node has local networks of its own
   * (each its `bridge`). Absent in records written before services carried it; those mean the
   * network of that name wherever they are read.
   */
  networkId?: string;
  mode: 'vip' | 'dnsrr';
  /** In vip mode: the virtual IP, from the network's subnet. */
  vip?: string;
  ports: ServicePort[];
  created: string;
  /** Replicas tsnet runs itself, spread over the ready nodes. */
  replicas?: ReplicaSpec;
  /** Host ports balanced over the serving tasks (`--publish HOSTPORT:TARGET`). */
  publish?: PortMapping[];
}

/** A task of a service. Leased by the node that runs it, so it leaves with that node. */
export interface TaskObject {
  id: string;
  /** Service id. */
  service: string;
  /** The node it runs on (replicas, sandboxes) or was added from (a runtime's address). */
  node: string;
  /** The replica slot (1…count) it fills, for replicas. */
  slot?: number;
  /** The sandbox that runs it, when tsnet knows it. */
  sandbox?: string;
  ipv4: string;
  healthy: boolean;
  draining: boolean;
  weight: number;
}
