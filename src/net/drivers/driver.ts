/** What a driver is told to attach: one sandbox to one network. */
export interface AttachInfo {
  /** Named namespace (under /run/netns) of the sandbox. */
  netns: string;
  /** Interface name inside the sandbox (eth0, eth1, …). */
  ifname: string;
  /** Host-side interface name, unique per (sandbox, network). */
  hostIf: string;
  ipv4?: { address: string; prefix: number };
  ipv6?: { address: string; prefix: number };
  gateway?: string;
  /** Whether this attachment carries the sandbox's default route. */
  defaultRoute: boolean;
  mtu: number;
  /** The sandbox interface's MAC, when the driver derives it (overlay: from the IPv4 address). */
  mac?: string;
  /** Written as the host link's alias, so a restart can find what this daemon made. */
  owner: string;
}

/** A network as the driver sees it. */
export interface NetworkInfo {
  name: string;
  /** The kernel device the driver owns for this network (bridge, or macvlan shim), if any. */
  device?: string;
  /** macvlan: the interface the sandboxes' macvlans hang off (IFACE or IFACE.VLAN). */
  parent?: string;
  /** macvlan: the host's own address on the segment, through a macvlan shim (`device`). */
  shim?: string;
  subnet?: string;
  gateway?: { address: string; prefix: number };
  gateway6?: { address: string; prefix: number };
  mtu: number;
  /** overlay: the network's namespace on this node (its bridge and VXLAN device live there). */
  netns?: string;
  /** overlay: the VXLAN network identifier. */
  vni?: number;
  /** overlay: carried only inside this node's WireGuard tunnel (`-o encrypted=true`). */
  encrypted?: boolean;
  /** Written as the device's alias (see AttachInfo.owner). */
  owner: string;
}

/**
 * A network driver: every action has its inverse, and each is idempotent so that a restart
 * can replay them over whatever the kernel still has (adopt what exists, recreate what is gone).
 */
export interface NetworkDriver {
  readonly name: string;
  /** Whether names resolve on its networks (Docker's default bridge has none). */
  createNetwork(net: NetworkInfo): Promise<void>;
  deleteNetwork(net: NetworkInfo): Promise<void>;
  attach(net: NetworkInfo, info: AttachInfo): Promise<void>;
  detach(net: NetworkInfo, info: AttachInfo): Promise<void>;
}
