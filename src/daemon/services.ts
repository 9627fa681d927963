import type { ReplicaSpec, ServiceObject, TaskObject } from '../cluster/objects.js';
import type { ServicePort } from '../registry/types.js';

/** A task of a service as the daemon works with it: the stored task without its service. */
export type TaskRecord = Omit<TaskObject, 'service'>;

/** A service with its tasks: the stored service and the tasks kept under it. */
export type ServiceRecord = ServiceObject & { tasks: TaskRecord[] };

export type { ReplicaSpec } from '../cluster/objects.js';

/** A stored service with its stored tasks, as the daemon works with it. */
export const serviceRecord = (svc: ServiceObject, tasks: readonly TaskObject[]): ServiceRecord => ({ ...svc, tasks: tasks.map(({ service: _s, ...t }) => t) });

/** Whether a task takes new connections and appears in answers. */
export const serving = (t: TaskRecord): boolean => t.healthy && !t.draining && t.weight > 0;

/** The serving tasks' addresses, each as many times as its weight: the slots a random DNAT picks from. `addressOf` may skip a task. */
export const weightedSlots = (tasks: readonly TaskRecord[], addressOf: (t: TaskRecord) => string | undefined = (t) => t.ipv4): string[] =>
  tasks.filter(serving).flatMap((t) => {
    const ip = addressOf(t);
    return ip === undefined ? [] : new Array<string>(t.weight).fill(ip);
  });

export interface ServiceCreate {
  name: string;
  network: string;
  endpointMode?: 'vip' | 'dnsrr';
  /** `NAME:PROTO:PORT`, e.g. `http:tcp:80`. */
  ports?: string[];
  replicas?: ReplicaSpec;
  /** `HOSTPORT:TARGET[/proto]`. */
  publish?: string[];
}

export interface TaskAdd {
  /** A sandbox on the service's network: its address there is the task's. */
  sandbox?: string;
  /** Starts out of rotation until a health check says otherwise (default true). */
  healthy?: boolean;
  /** Or an address a runtime manages itself. */
  ip?: string;
  weight?: number;
}

export interface TaskChange {
  healthy?: boolean;
  draining?: boolean;
  weight?: number;
}

export function parseServicePort(spec: string): ServicePort {
  const m = /^([a-zA-Z0-9][a-zA-Z0-9_-]{0,62}):(tcp|udp):(\d{1,5})$/.exec(spec);
  if (m === null || Number(m[3]) < 1 || Number(m[3]) > 65535) throw new Error(`--port ${spec}: expected NAME:tcp|udp:PORT`);
  return { name: m[1]!, protocol: m[2] as 'tcp' | 'udp', port: Number(m[3]) };
}

/** The VIP services each sandbox network sees, for the in-sandbox load balancer. */
export function vipServicesOn(services: readonly ServiceRecord[], networks: readonly string[]) {
  return services
    .filter((s) => s.mode === 'vip' && s.vip !== undefined && networks.includes(s.network))
    // Draining tasks stay with weight 0 (IPVS drains them; nft gives them no slot); unhealthy ones go.
    .map((s) => ({ name: s.name, vip: s.vip!, ports: s.ports, backends: s.tasks.filter((t) => t.healthy).map((t) => ({ ip: t.ipv4, weight: serving(t) ? t.weight : 0 })) }));
}
