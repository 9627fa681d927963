import { cidr, comment, ifname, ifnames, ipv4, join, nft, port, protocol, render, table, type Token } from './values.js';

/** What the firewall needs to know of one bridge network. */
export interface BridgeRules {
  network: string;
  bridge: string;
  subnet: string;
  /** No egress and no masquerade (`--internal`). */
  internal: boolean;
  /** Sandboxes on it may talk to each other (`--opt icc=false` turns that off). */
  icc: boolean;
  /** Host ends of the sandboxes' veths: the bridge ports that icc=false keeps apart. */
  ports: readonly string[];
}

/** A published port as the firewall needs it: where it arrives and where it goes. */
export interface PublishRule {
  hostIp: string;
  hostPort: number;
  protocol: 'tcp' | 'udp';
  /** Where it goes on `bridge`: one sandbox, or a service's serving tasks (chosen at random). */
  targets: readonly { ip: string; port: number }[];
  bridge: string;
  /** The sandbox or service it belongs to (the rule's comment). */
  owner: string;
}

function dnatRules(ports: readonly PublishRule[]): Token[] {
  return ports.map((p) => {
    const to = p.hostIp === '0.0.0.0' ? nft`fib daddr type local` : nft`ip daddr ${ipv4(p.hostIp)}`;
    const [one] = p.targets;
    const action =
      p.targets.length === 0
        ? nft`reject`
        : p.targets.length === 1
          ? nft`dnat ip to ${ipv4(one!.ip)}:${port(one!.port)}`
          : nft`dnat ip to numgen random mod ${p.targets.length} map { ${join(p.targets.map((x, i) => nft`${i} : ${ipv4(x.ip)} . ${port(x.port)}`), ', ')} }`;
    return nft`    ${to} ${protocol(p.protocol)} dport ${port(p.hostPort)} ${action} comment ${comment(p.owner)}`;
  });
}

/**
 * The whole `inet tsnet` table for the current networks, as one `nft -f` file: the table is
 * declared, flushed and filled in the same transaction, so no packet sees it half-built
 * (kernel-notes.md: separate flush and add dropped connections, one file dropped none).
 * Outbound traffic from a bridge's subnet to anything but that bridge is masqueraded. The
 * forward chain isolates: a new connection into a bridge from anywhere but itself is dropped
 * (between networks, and from outside), internal networks get no egress. Its accepts cannot
 * override a drop in another table, and tsnet changes no chain it does not own.
 */
/** An inet table declared, flushed and filled in one file, so that no packet sees it half built. */
const inetTable = (t: Token, body: readonly Token[]): Token[] => [nft`table inet ${t} {}`, nft`flush table inet ${t}`, nft`table inet ${t} {`, ...body, nft`}`];

/** Published ports' DNAT for traffic that arrives from outside. */
const preroutingDnat = (ports: readonly PublishRule[]): Token[] => [nft`  chain prerouting {`, nft`    type nat hook prerouting priority dstnat; policy accept;`, ...dnatRules(ports), nft`  }`];

export function renderRuleset(name: string, networks: readonly BridgeRules[], ports: readonly PublishRule[] = []): string {
  const t = table(name);
  const nets = networks.map((n) => ({ ...n, dev: ifname(n.bridge), net: comment(n.network), subnet: cidr(n.subnet) }));
  // Order matters: replies, then traffic within one bridge, then new connections into a bridge
  // from anywhere else are dropped; what is left (egress) falls to the accept policy.
  return render([
    ...inetTable(t, [
      // Published ports: DNAT for traffic from outside (prerouting) and from the host (output).
      ...preroutingDnat(ports),
      nft`  chain output {`,
      nft`    type nat hook output priority -100; policy accept;`,
      ...dnatRules(ports),
      nft`  }`,
      nft`  chain postrouting {`,
      nft`    type nat hook postrouting priority srcnat; policy accept;`,
      ...nets.filter((n) => !n.internal).map((n) => nft`    ip saddr ${n.subnet} oifname != ${n.dev} masquerade comment ${n.net}`),
      // Hairpin (a sandbox reaching its own network through a published port) and the host's
      // 127.0.0.1 need their source rewritten; outside clients keep theirs.
      ...nets.map((n) => nft`    oifname ${n.dev} ct status dnat ip saddr { ${n.subnet}, 127.0.0.0/8 } masquerade comment ${n.net}`),
      nft`  }`,
      // route_localnet=1 on the bridges (for published ports on 127.0.0.1) would let a sandbox
      // reach what the host bound to 127.0.0.1 (CVE-2020-8558); kube-proxy's guard: only DNATed
      // traffic to 127.0.0.0/8 may come in on anything but lo.
      nft`  chain input {`,
      nft`    type filter hook input priority filter; policy accept;`,
      nft`    iifname != "lo" ip daddr 127.0.0.0/8 ct status & dnat == 0 drop`,
      nft`  }`,
      nft`  chain forward {`,
      nft`    type filter hook forward priority filter; policy accept;`,
      nft`    ct state established,related accept`,
      ...nets.map((n) => nft`    iifname ${n.dev} oifname ${n.dev} accept comment ${n.net}`),
      // Published ports are the way in from outside and from other networks (not into internal ones).
      ...nets.filter((n) => !n.internal).map((n) => nft`    oifname ${n.dev} ct status dnat accept comment ${n.net}`),
      ...nets.map((n) => nft`    oifname ${n.dev} ct state new drop comment ${n.net}`),
      ...nets.filter((n) => n.internal).map((n) => nft`    iifname ${n.dev} drop comment ${n.net}`),
      nft`  }`,
    ]),
    // Frames between two ports of one bridge never reach the inet forward hook unless
    // br_netfilter says so; the bridge family sees them always.
    nft`table bridge ${t} {}`,
    nft`flush table bridge ${t}`,
    nft`table bridge ${t} {`,
    nft`  chain forward {`,
    nft`    type filter hook forward priority filter; policy accept;`,
    ...nets.filter((n) => !n.icc && n.ports.length > 0).map((n) => nft`    iifname { ${ifnames(n.ports)} } oifname { ${ifnames(n.ports)} } ether type { ip, ip6 } drop comment ${n.net}`),
    nft`  }`,
    nft`}`,
  ]);
}

/** Removes the table (nothing left behind when the last network goes). */
export const renderDelete = (name: string): string => {
  const t = table(name);
  return render([nft`table inet ${t} {}`, nft`delete table inet ${t}`, nft`table bridge ${t} {}`, nft`delete table bridge ${t}`]);
};

/**
 * The routing mesh's table inside a node's ingress sandbox: a published port that arrives (from
 * the host, through the gateway bridge) is DNATed to a serving task's ingress address and target
 * port on any node, and leaves through `ingressIf` with the sandbox's own ingress address as its
 * source, so the task's reply comes back here whichever node it runs on (as Docker's
 * ingress-sbox does; the task sees this address, not the client's).
 */
export function renderIngressTable(name: string, ingressIf: string, ports: readonly PublishRule[]): string {
  return render(
    inetTable(table(name), [
      ...preroutingDnat(ports),
      nft`  chain postrouting {`,
      nft`    type nat hook postrouting priority srcnat; policy accept;`,
      nft`    oifname ${ifname(ingressIf)} ct status dnat masquerade`,
      nft`  }`,
    ]),
  );
}
