import type { PortMapping } from '../net/ports/spec.js';
import type { SandboxCreate } from './requests.js';
import type { ServiceRecord } from './services.js';
import type { DaemonState, NetworkRecord, SandboxRecord } from './state.js';

/**
 * What the parts of the daemon that build on sandboxes (services, replicas) may ask of the
 * manager: reads of the state, the change queue, and the sandbox and service steps. The manager
 * implements it; those parts depend on this, not on the manager, so no import runs in a circle.
 */
export interface DaemonCore {
  readonly state: Readonly<DaemonState>;
  /** Runs `fn` after every earlier change has finished. */
  serial<T>(fn: () => Promise<T>): Promise<T>;
  network(ref: string): NetworkRecord;
  sandbox(ref: string): SandboxRecord;
  createSandbox(req: SandboxCreate, replicaOf?: string): Promise<SandboxRecord>;
  removeSandbox(ref: string): Promise<void>;
  setServices(services: ServiceRecord[]): Promise<void>;
  applyServices(services: ServiceRecord[], network: string): Promise<void>;
  reserveHostPorts(ports: readonly PortMapping[]): Promise<PortMapping[]>;
  releaseHostPorts(ports: readonly PortMapping[]): void;
}
