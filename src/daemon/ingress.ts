import type { PublishRule } from '../net/nft/ruleset.js';
import type { PortMapping } from '../net/ports/spec.js';
import type { NetworkCreate } from './requests.js';
import { GATEWAY_BRIDGE } from './gateway-bridge.js';
import { weightedSlots, type ServiceRecord } from './services.js';
import type { NetworkRecord, SandboxRecord } from './state.js';

/**
 * The routing mesh (seed 004): a service on an overlay that publishes a port is reachable on
 * that port on every node, through the `ingress` overlay and one ingress sandbox per node (its
 * gateway bridge leg is the host side). tsnet makes both when the first such service appears and
 * removes the sandbox when the last goes.
 */
export const INGRESS_NETWORK = 'ingress';
export const INGRESS_SANDBOX = 'ingress-sbox';
/** The `replicaOf` of the ingress sandbox: no service has it (service names start with a letter or digit). */
export const INGRESS_ROLE = '-ingress';
/** Its nft table inside the ingress sandbox. */
export const INGRESS_TABLE = 'tsnet_ingress';

export const ingressRequest: NetworkCreate = { name: INGRESS_NETWORK, driver: 'overlay', scope: 'swarm' };

const onOverlay = (s: ServiceRecord, networks: readonly NetworkRecord[]): boolean => networks.find((n) => n.name === s.network)?.driver === 'overlay';
const meshPorts = (s: ServiceRecord): PortMapping[] => (s.publish ?? []).filter((p) => p.mode !== 'host');

/** Services on an overlay with ports published through the mesh (not `mode=host`). */
export const meshServices = (services: readonly ServiceRecord[], networks: readonly NetworkRecord[]): ServiceRecord[] =>
  services.filter((s) => meshPorts(s).length > 0 && onOverlay(s, networks));

/**
 * The ingress sandbox's DNAT rules: each published port over the serving tasks' ingress
 * addresses (`ingressAddress` finds a task's, by its sandbox and node) at the target port.
 */
export function ingressPorts(services: readonly ServiceRecord[], ingressAddress: (sandbox: string, node: string) => string | undefined): PublishRule[] {
  return services.flatMap((svc) => {
    const targets = weightedSlots(svc.tasks, (t) => (t.sandbox === undefined ? undefined : ingressAddress(t.sandbox, t.node)));
    return meshPorts(svc).map((p) => ({ hostIp: '0.0.0.0', hostPort: p.hostPort, protocol: p.protocol, targets: targets.map((ip) => ({ ip, port: p.port })), bridge: '', owner: svc.name }));
  });
}

/** The host's side: each published port to this node's ingress sandbox, on its gateway bridge. */
export function hostIngressPorts(services: readonly ServiceRecord[], sbox: SandboxRecord | undefined, gatewayDevice: string | undefined): PublishRule[] {
  const ip = sbox?.attachments[GATEWAY_BRIDGE]?.ipv4;
  return services.flatMap((svc) =>
    meshPorts(svc).map((p) => ({ ...p, targets: ip === undefined || gatewayDevice === undefined ? [] : [{ ip, port: p.hostPort }], bridge: gatewayDevice ?? '', owner: svc.name })),
  );
}

/**
 * `mode=host` ports of services on an overlay: published only on a node that runs a serving
 * task, to its own tasks' gateway bridge addresses (no SNAT on the way: the task sees the
 * client's address, as with Docker's host mode). A node without one opens nothing.
 */
export function hostModePorts(services: readonly ServiceRecord[], networks: readonly NetworkRecord[], own: readonly SandboxRecord[], node: string, gatewayDevice: string | undefined): PublishRule[] {
  if (gatewayDevice === undefined) return [];
  return services
    .filter((s) => onOverlay(s, networks))
    .flatMap((svc) => {
      const targets = weightedSlots(svc.tasks, (t) => (t.node === node ? own.find((sb) => sb.name === t.sandbox)?.attachments[GATEWAY_BRIDGE]?.ipv4 : undefined));
      if (targets.length === 0) return [];
      return (svc.publish ?? []).filter((p) => p.mode === 'host').map((p) => ({ ...p, targets: targets.map((ip) => ({ ip, port: p.port })), bridge: gatewayDevice, owner: svc.name }));
    });
}
