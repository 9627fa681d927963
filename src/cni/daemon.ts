import { call, ControlError, UnreachableError } from '../control/client.js';
import type { AttachRequest, SandboxCreate } from '../daemon/requests.js';
import { Code, CniError } from './errors.js';

/** The parts of the daemon's sandbox view (GET /sandboxes/{id}) tsnet-cni reads. */
export interface SandboxView {
  Id: string;
  Name: string;
  NetnsName: string | null;
  Networks: Record<string, { IPv4Address: string; IPv6Address: string; Aliases: string[]; Interface: string; HostInterface: string }>;
  DnsSearch: string[];
  DnsOptions: string[];
}

/** The parts of the daemon's network view (GET /networks/{id}, Docker's shape) tsnet-cni reads. */
export interface NetworkView {
  Name: string;
  Id: string;
  IPAM: { Config: { Subnet: string; Gateway?: string }[] };
  /** Sandbox id → its addresses with their prefix (`10.1.2.3/24`). */
  Containers: Record<string, { IPv4Address: string; IPv6Address: string }>;
}

/**
 * A daemon error as the runtime should see it: unreachable, or a store that cannot take changes
 * now, is "try again later" (11); a refused request is the configuration's fault (7); the rest
 * is tsnet-cni's own code 100. `doing` says what was being asked.
 */
export function asCniError(err: unknown, doing: string): CniError {
  if (err instanceof CniError) return err;
  if (err instanceof UnreachableError) return new CniError(Code.tryAgainLater, `${doing}: ${err.message}`);
  if (err instanceof ControlError) {
    const code = err.status === 503 ? Code.tryAgainLater : err.status === 400 ? Code.invalidConfig : Code.refused;
    return new CniError(code, `${doing}: the tsnet daemon answered ${err.status}: ${err.message}`);
  }
  return new CniError(Code.refused, `${doing}: ${(err as Error).message}`);
}

/** The daemon on one socket, as the CNI commands need it: a missing object is undefined, not an error. */
export class Daemon {
  constructor(readonly socket: string) {}

  async #ask<T>(doing: string, method: string, path: string, body?: unknown): Promise<T> {
    try {
      return await call<T>(this.socket, method, path, body);
    } catch (err) {
      throw asCniError(err, doing);
    }
  }

  async #find<T>(doing: string, path: string): Promise<T | undefined> {
    try {
      return await call<T>(this.socket, 'GET', path);
    } catch (err) {
      if (err instanceof ControlError && err.status === 404) return undefined;
      throw asCniError(err, doing);
    }
  }

  network(ref: string): Promise<NetworkView | undefined> {
    return this.#find(`looking up network ${ref}`, `/networks/${encodeURIComponent(ref)}`);
  }

  sandbox(name: string): Promise<SandboxView | undefined> {
    return this.#find(`looking up sandbox ${name}`, `/sandboxes/${encodeURIComponent(name)}`);
  }

  /** Creates the sandbox; undefined when its name is taken (another ADD for the same container won the race). */
  async createSandbox(req: SandboxCreate): Promise<SandboxView | undefined> {
    try {
      return await call<SandboxView>(this.socket, 'POST', '/sandboxes/create', req);
    } catch (err) {
      if (err instanceof ControlError && err.status === 409) return undefined;
      throw asCniError(err, `creating sandbox ${req.name}`);
    }
  }

  async connect(network: string, sandbox: string, attach: Omit<AttachRequest, 'network'>): Promise<void> {
    await this.#ask(`connecting sandbox ${sandbox} to network ${network}`, 'POST', `/networks/${encodeURIComponent(network)}/connect`, {
      Container: sandbox,
      EndpointConfig: {
        IPAMConfig: { IPv4Address: attach.ip, IPv6Address: attach.ip6 },
        Aliases: attach.aliases,
        DriverOpts: attach.ifname === undefined ? undefined : { 'com.docker.network.endpoint.ifname': attach.ifname },
      },
    });
  }

  /** Disconnects; one already gone (404) is done. */
  async disconnect(network: string, sandbox: string): Promise<void> {
    await this.#gone(`disconnecting sandbox ${sandbox} from network ${network}`, 'POST', `/networks/${encodeURIComponent(network)}/disconnect`, { Container: sandbox });
  }

  /** Removes the sandbox; one already gone (404) is done. */
  async removeSandbox(name: string): Promise<void> {
    await this.#gone(`removing sandbox ${name}`, 'DELETE', `/sandboxes/${encodeURIComponent(name)}`);
  }

  async #gone(doing: string, method: string, path: string, body?: unknown): Promise<void> {
    try {
      await call(this.socket, method, path, body);
    } catch (err) {
      if (!(err instanceof ControlError && err.status === 404)) throw asCniError(err, doing);
    }
  }
}
