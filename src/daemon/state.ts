import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import type { IpamConfig, NetworkObject } from '../cluster/objects.js';
import type { PortMapping } from '../net/ports/spec.js';
import type { ServiceRecord } from './services.js';

/**
 * The mark a daemon puts on what it makes (a link's alias, a namespace's `lo`): derived from
 * its state directory, so the same daemon finds its own after a crash and no other daemon's.
 */
export const ownerMark = (stateDir: string): string => `tsnet:${createHash('sha256').update(resolve(stateDir)).digest('hex').slice(0, 12)}`;

/** The daemon's persisted state: what `tsnet` users created, enough to rebuild the kernel side. */

/** A network as the daemon works with it: the stored object (a local one names its node). */
export type NetworkRecord = NetworkObject;
export type IpamRecord = IpamConfig;

export interface AttachmentRecord {
  ipv4?: string;
  ipv6?: string;
  aliases: string[];
  /** Interface inside the sandbox. */
  ifname: string;
  /** Host end of the veth pair. */
  hostIf: string;
  /** Endpoint id (64 hex). */
  endpointId: string;
}

export interface LinkRecord {
  /** The linked sandbox's name. */
  name: string;
  alias: string;
}

export interface SandboxRecord {
  id: string;
  name: string;
  created: string;
  hostname: string;
  /** `networks`: its own namespace wired to networks; `host`/`none`; or another sandbox's namespace. */
  mode: 'networks' | 'host' | 'none' | `container:${string}`;
  /** Name of its namespace under /run/netns (tsnet-<name>); absent in host mode. */
  netns?: string;
  /** Made by tsnet (deleted with the sandbox) or adopted from a runtime (only its mount is removed). */
  ownsNetns: boolean;
  aliases: string[];
  dns: string[];
  dnsSearch: string[];
  dnsOptions: string[];
  links: LinkRecord[];
  attachments: Record<string, AttachmentRecord>;
  /** Published ports, host ports allocated (absent in state files from before ports existed). */
  ports?: PortMapping[];
  /** sha256 of each sandbox file as tsnet last wrote it: a file that differs was edited and is kept. */
  fileHashes: Record<string, string>;
  /** The service whose replica this sandbox is (made and removed by tsnet's replica manager). */
  replicaOf?: string;
}

export interface DaemonState {
  version: 1;
  networks: NetworkRecord[];
  sandboxes: SandboxRecord[];
  /** Absent in state files from before services existed. */
  services?: ServiceRecord[];
}

export const emptyState = (): DaemonState => ({ version: 1, networks: [], sandboxes: [], services: [] });
