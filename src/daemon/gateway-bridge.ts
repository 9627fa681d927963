import type { NetworkCreate } from './requests.js';
import type { DaemonState, NetworkRecord, SandboxRecord } from './state.js';

/**
 * An overlay carries traffic between sandboxes and nothing else: as Docker does, a sandbox on an
 * overlay with no other way out also joins this node's `docker_gwbridge`, a local bridge with no
 * names and no traffic between its members (icc off), which takes its default route and
 * masquerades it out of the host. tsnet makes it on first use and attaches and detaches it
 * itself; it cannot be joined or left by hand.
 */
export const GATEWAY_BRIDGE = 'docker_gwbridge';

export const gatewayBridgeRequest: NetworkCreate = { name: GATEWAY_BRIDGE, options: { 'com.docker.network.bridge.enable_icc': 'false' } };

const networkOf = (state: DaemonState, name: string): NetworkRecord | undefined => state.networks.find((n) => n.name === name);

/** Whether `sb`, as attached, needs the gateway bridge: on a non-internal overlay, and on no bridge with a way out. */
export function needsGatewayBridge(state: DaemonState, sb: SandboxRecord): boolean {
  const nets = Object.keys(sb.attachments).filter((n) => n !== GATEWAY_BRIDGE).map((n) => networkOf(state, n));
  return nets.some((n) => n?.driver === 'overlay' && !n.internal) && !nets.some((n) => n !== undefined && n.driver !== 'overlay' && !n.internal);
}

/** The network that carries a sandbox's default route: the gateway bridge when it has it, else its first. */
export const defaultRouteNetwork = (sb: SandboxRecord): string | undefined => (GATEWAY_BRIDGE in sb.attachments ? GATEWAY_BRIDGE : Object.keys(sb.attachments)[0]);
