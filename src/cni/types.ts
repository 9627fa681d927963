/**
 * The CNI wire shapes tsnet-cni reads and writes (SPEC.md 1.0 "Result", "Version"), apart from
 * the parsed, internal configuration in config.ts.
 */

export interface CniInterface {
  name: string;
  mac?: string;
  /** The namespace's path, for an interface inside the container; absent on the host's. */
  sandbox?: string;
}

export interface CniIp {
  /** Only before 1.0.0: "4" or "6". */
  version?: '4' | '6';
  /** Address and prefix: `10.1.2.3/24`. */
  address: string;
  gateway?: string;
  /** Index into `interfaces`. */
  interface?: number;
}

export interface CniRoute {
  dst: string;
  gw?: string;
}

export interface CniDns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

export interface CniResult {
  cniVersion: string;
  interfaces?: CniInterface[];
  ips?: CniIp[];
  routes?: CniRoute[];
  dns?: CniDns;
}

export interface CniErrorResult {
  cniVersion: string;
  code: number;
  msg: string;
  details?: string;
}

export interface CniVersionResult {
  cniVersion: string;
  supportedVersions: string[];
}
