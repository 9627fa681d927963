import type { TaskObject } from '../cluster/objects.js';
import type { PlacedTask } from '../cluster/placement.js';
import type { PortMapping } from '../net/ports/spec.js';
import type { Condition, Operation, Store } from '../store/store.js';
import type { TakenElsewhere } from './plan.js';
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
  applyServices(next: ServiceRecord[], network: string, write: () => Promise<void>): Promise<void>;
  /** This node's name. */
  readonly node: string;
  /** The cluster store, for reads a write must make first. */
  readonly store: Store;
  /** A cluster store transaction, answered once this node's view has it; false when a condition failed. */
  write(conditions: readonly Condition[], ops: readonly Operation[]): Promise<boolean>;
  /** Puts and deletes this node's tasks under its lease; `onlyNew` claims the puts' keys (false when one exists). */
  writeTasks(put: readonly TaskObject[], remove: readonly string[], onlyNew?: boolean): Promise<boolean>;
  claimAddress(net: NetworkRecord, ip: string, holder: string, requested: boolean): Promise<string>;
  /** Addresses other nodes hold on `net`, for planning the one `claimAddress` is given. */
  readonly takenElsewhere: TakenElsewhere;
  /** A service's tasks as placement weighs them (slot, node, age). */
  placedTasks(service: string): PlacedTask[];
  reserveHostPorts(ports: readonly PortMapping[]): Promise<PortMapping[]>;
  /** The routing mesh's `ingress` overlay, made if it is not there yet; call it inside `serial`. */
  ingressNetwork(): Promise<NetworkRecord>;
  releaseHostPorts(ports: readonly PortMapping[]): void;
  /** Lets the node keep a new overlay service's ports only where it DNATs them. */
  adoptOverlayPorts(ports: readonly PortMapping[]): void;
}
