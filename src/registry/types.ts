/**
 * The public shapes of the registry: what a records file holds, what the daemon persists and
 * what a runtime passes in when it embeds tsnet. Every optional field is documented with its default.
 */

export interface NetworkSpec {
  name: string;
  /** Opaque id (Docker-style 64 hex); defaults to none. */
  id?: string;
  subnet?: string;
  gateway?: string;
  ipv6Subnet?: string;
  ipv6Gateway?: string;
  /** Whether names on this network resolve (default true; Docker's default `bridge` has none). */
  dns?: boolean;
}

export interface EndpointAttachment {
  ipv4?: string;
  ipv6?: string;
  /**
   * Further addresses on this network, of either family, answered after the first of theirs
   * (podman gives a container one address per subnet of a network with several). Default none.
   */
  secondary?: string[];
  /** Network-scoped aliases (`--network-alias`). */
  aliases?: string[];
}

export interface EndpointSpec {
  /** 12 to 64 hex digits; its first 12 resolve as the short id. */
  id: string;
  name: string;
  /** Resolves like the name when set. */
  hostname?: string;
  /** Network name → addresses and aliases on it. */
  networks: Record<string, EndpointAttachment>;
}

export interface ServicePort {
  name: string;
  protocol: 'tcp' | 'udp';
  port: number;
}

export interface TaskSpec {
  /** Opaque, as the runtime writes it: 1 to 64 lowercase letters and digits (Swarm: 25 base-36). */
  id: string;
  /** Resolves to this task's addresses; defaults to `<service>.<id first 12>`. */
  name?: string;
  ipv4?: string;
  ipv6?: string;
  /** Unhealthy tasks leave every answer (default true). */
  healthy?: boolean;
  /** Draining tasks leave every answer and get no new connections (default false). */
  draining?: boolean;
  /** Relative share in DNS RR order, SRV weight and the VIP (default 1; 0 takes no new traffic). */
  weight?: number;
}

export type EndpointMode = 'vip' | 'dnsrr';

export interface ServiceSpec {
  name: string;
  network: string;
  mode: EndpointMode;
  /** The virtual IP in `vip` mode. */
  vip?: string;
  vip6?: string;
  ports?: ServicePort[];
  tasks: TaskSpec[];
}

/** A whole registry: the records file's format and the store's. */
export interface RecordsState {
  networks: NetworkSpec[];
  endpoints: EndpointSpec[];
  services: ServiceSpec[];
}

/** Every address of an attachment: its IPv4, its IPv6, then the secondary ones. */
export function attachmentAddresses(att: EndpointAttachment): string[] {
  const all: string[] = [];
  if (att.ipv4 !== undefined) all.push(att.ipv4);
  if (att.ipv6 !== undefined) all.push(att.ipv6);
  if (att.secondary !== undefined) all.push(...att.secondary);
  return all;
}
