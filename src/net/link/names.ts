import { vlanOf } from '../drivers/macvlan.js';
import type { HostFacts } from './host.js';

/** What the kernel takes as an interface name and nft and `ip -batch` can carry as one word. */
const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;

/** The syntax of an interface name; `what` names the field in the error. */
export function checkIfname(name: string, what: string): void {
  if (!IFNAME.test(name) || name === '.' || name === '..') {
    throw new Error(`${what} ${JSON.stringify(name.slice(0, 40))} is not an interface name (1 to 15 of letters, digits, '_', '.', '-')`);
  }
}

/**
 * A bridge tsnet is to make: a name no interface on the host has yet (tsnet would adopt it, put
 * the gateway on it and delete it with the network) and none of tsnet's own names.
 */
export function checkBridgeName(name: string, taken: ReadonlySet<string>, host?: HostFacts): void {
  checkIfname(name, 'bridge name');
  if (taken.has(name) || host?.links.has(name) === true) throw new Error(`bridge name ${name} is an existing interface: pick a name no interface has`);
}

/**
 * A macvlan parent: an interface of the host's that exists (or IFACE.VLAN on one that does, which
 * tsnet makes), not loopback, and not a link tsnet made for a network or a sandbox.
 */
export function checkParent(parent: string, taken: ReadonlySet<string>, host?: HostFacts): void {
  checkIfname(parent, 'parent');
  const own = (n: string): boolean => taken.has(n) || host?.links.get(n)?.owned === true;
  if (own(parent)) throw new Error(`parent ${parent} is an interface tsnet made for another network or sandbox`);
  if (host === undefined) return;
  const link = host.links.get(parent);
  const base = link === undefined ? vlanOf(parent)?.base : parent;
  const baseLink = base === undefined ? undefined : host.links.get(base);
  if (baseLink === undefined) throw new Error(`parent interface ${parent} does not exist`);
  if (baseLink.loopback) throw new Error(`parent ${parent} is a loopback interface`);
  if (own(baseLink.name)) throw new Error(`parent ${parent} is on an interface tsnet made for another network or sandbox`);
}
