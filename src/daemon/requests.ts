/** What API callers ask for; validated by the manager. */

export interface NetworkCreate {
  name: string;
  driver?: string;
  subnet?: string;
  gateway?: string;
  ipRange?: string;
  subnet6?: string;
  gateway6?: string;
  internal?: boolean;
  /** `local` (default): this node's alone; `swarm`: made on every node, its addresses the cluster's. */
  scope?: string;
  /** overlay: sandboxes may join it by hand (Docker's --attachable); without it only a service's replicas. */
  attachable?: boolean;
  labels?: Record<string, string>;
  options?: Record<string, string>;
}

export interface AttachRequest {
  network: string;
  ip?: string;
  ip6?: string;
  aliases?: string[];
  /** The interface's name inside the sandbox (a CNI runtime's CNI_IFNAME); default the first free ethN. */
  ifname?: string;
}

export interface SandboxCreate {
  name: string;
  /** Networks to join; `host`, `none` or `container:<sandbox>` as the only entry select that mode. Default: `bridge`. */
  networks?: AttachRequest[];
  hostname?: string;
  aliases?: string[];
  dns?: string[];
  dnsSearch?: string[];
  dnsOptions?: string[];
  /** `name` or `name:alias`. */
  links?: string[];
  /** Adopt this namespace (a path such as /proc/PID/ns/net or /run/netns/X) instead of making one. */
  netns?: string;
  pid?: number;
  /** Docker's `-p [HOSTIP:][HOSTPORT:]PORT[/proto]`. */
  publish?: string[];
  /** Ports `publishAll` (`-P`) publishes to free host ports. */
  expose?: string[];
  publishAll?: boolean;
}
